"""Attachments are judged by their bytes, not by their names."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mailmaker import FIXTURES, mail_with, zip_of

from casemail.mime.attachments import safe_name
from casemail.mime.reader import read_mail


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


def one_file(filename: str, ctype: str, data: bytes, **limits: int):
    mail = read_mail(mail_with([(filename, ctype, data)]), **limits)
    [item] = mail.attachments
    return item


def test_zip_within_limits_is_kept_with_its_entry_names():
    data = zip_of({"logs/app.log": b"started\n", "readme.txt": b"hi"})
    item = one_file("logs.zip", "application/zip", data)
    assert item.kept, item.reason
    assert item.details["entries"] == ["logs/app.log", "readme.txt"]


def test_zip_bomb_is_refused_by_its_compression_ratio():
    data = zip_of({"zeros.bin": bytes(50 * 2**20)})
    item = one_file("photos.zip", "application/zip", data)
    assert not item.kept
    assert "zip bomb" in item.reason


def test_zip_with_too_many_entries_is_refused():
    data = zip_of({f"f{n}.txt": b"x" for n in range(1001)})
    item = one_file("many.zip", "application/zip", data)
    assert not item.kept
    assert "more than 1000 files" in item.reason


def test_damaged_zip_is_refused():
    data = zip_of({"a.txt": b"hello" * 100})[:-30]
    item = one_file("broken.zip", "application/zip", data)
    assert not item.kept
    assert "damaged" in item.reason


def test_csv_counts_as_plain_text():
    item = one_file("orders.csv", "text/csv", b"order,amount\n1042,49.00\n")
    assert item.kept
    assert item.content_type == "text/plain"


def test_html_fragment_named_txt_is_refused():
    item = one_file("notes.txt", "text/plain",
                    b"Dear team,\n<a href='http://x.example'>click</a>\n")
    assert not item.kept
    assert item.content_type == "text/html"
    assert item.details["mismatch"] == \
        "declared as text/plain and named .txt but the content is text/html"


def test_elf_program_is_refused_whatever_it_is_called():
    elf = Path("/bin/true").read_bytes()
    item = one_file("cat.jpg", "image/jpeg", elf)
    assert not item.kept
    assert "program" in item.reason


def test_svg_image_is_refused_for_its_scripts():
    svg = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">'
           b"<script>alert(1)</script></svg>")
    item = one_file("logo.svg", "image/svg+xml", svg)
    assert not item.kept


def test_kept_file_with_a_lying_name_records_the_contradiction():
    pdf = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
    item = one_file("scan.png", "image/png", pdf)
    assert item.kept
    assert item.content_type == "application/pdf"
    assert item.reason == ("declared as image/png and named .png but the "
                           "content is application/pdf")


def test_sniffing_reads_only_the_start_of_a_large_file():
    raw = mail_with([("zeros.txt", "text/plain", bytes(15 * 2**20))])
    started = time.perf_counter()
    [item] = read_mail(raw).attachments
    assert time.perf_counter() - started < 2
    assert not item.kept
    assert item.size == 15 * 2**20


@pytest.mark.parametrize(("given", "safe"), [
    ("..\\..\\boot.ini", "boot.ini"),
    ("/etc/passwd", "passwd"),
    ("re\x00port\x1b.pdf", "report.pdf"),
    ("CON.txt", "_CON.txt"),
    ("CONIN$", "_CONIN$"),
    ("conout$.log", "_conout$.log"),
    ("Clock$.txt", "_Clock$.txt"),
    ("COM\u00b9.pdf", "_COM\u00b9.pdf"),
    ("lpt\u00b3", "_lpt\u00b3"),
    ("LPT0.png", "_LPT0.png"),
    ("nul .txt", "_nul .txt"),
    ("CONSOLE.txt", "CONSOLE.txt"),
    ("com10.txt", "com10.txt"),
    ("...", "attachment.pdf"),
    ("a" * 300 + ".pdf", "a" * 116 + ".pdf"),
    ("é" * 100 + ".txt", "é" * 58 + ".txt"),
])
def test_safe_names_are_one_short_printable_component(given, safe):
    assert safe_name(given, "application/pdf") == safe
