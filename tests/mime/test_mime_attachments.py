"""Attachments are judged by their bytes, not by their names."""

from __future__ import annotations

from pathlib import Path

from casemail.mime.reader import read_mail

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mime"


def files(name: str, **limits: int):
    mail = read_mail((FIXTURES / name).read_bytes(), **limits)
    return {a.filename: a for a in mail.attachments}


def test_png_and_text_log_are_kept():
    found = files("attachments_mixed.eml")
    assert found["screen.png"].kept
    assert found["screen.png"].content_type == "image/png"
    assert found["install.log"].kept
    assert found["install.log"].content_type == "text/plain"
    assert found["install.log"].data.startswith(b"step 1 ok")


def test_html_named_pdf_is_refused_with_the_contradiction_recorded():
    pdf = files("attachments_mixed.eml")["invoice.pdf"]
    assert not pdf.kept
    assert pdf.content_type == "text/html"
    assert pdf.declared_type == "application/pdf"
    assert "web page" in pdf.reason
    assert "content is text/html" in pdf.details["mismatch"]


def test_windows_program_is_refused_whatever_its_declared_type():
    exe = files("attachments_mixed.eml")["setup.exe"]
    assert not exe.kept
    assert "Windows program" in exe.reason


def test_per_file_limit_refuses_with_the_size_in_words():
    found = files("attachments_mixed.eml", max_attachment_size=40)
    assert not found["screen.png"].kept
    assert "allowed for one file" in found["screen.png"].reason


def test_per_mail_limit_refuses_what_no_longer_fits():
    found = files("attachments_mixed.eml", max_attachments_total=80)
    assert found["screen.png"].kept
    assert not found["install.log"].kept
    assert "for one mail" in found["install.log"].reason
