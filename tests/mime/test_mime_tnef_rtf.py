"""Outlook's winmail.dat whose only body is compressed RTF."""

from __future__ import annotations

import struct

import compressed_rtf
from mailmaker import mail_with, winmail

from casemail.mime.reader import read_mail
from casemail.mime.rtf import MAX_RTF, read_compressed, read_rtf

PLAIN_RTF = (
    rb"{\rtf1\ansi\ansicpg1252\fromtext \deff0{\fonttbl"
    rb"{\f0\fswiss Arial;}}{\colortbl;\red0\green0\blue255;}"
    b"\r\n"
    rb"\f0\fs20 Hello Lindqvist Games,\par"
    b"\r\n"
    rb"\par the licence key for order 1042 never arrived.\par"
    b"\r\n"
    rb"Gr\'fc\'dfe, Ma\u322?gorzata\par"
    b"\r\n}")

# What Outlook writes for an HTML mail: the markup in \htmltag groups,
# the RTF rendering of the same text fenced off by \htmlrtf.
HTML_RTF = (
    rb"{\rtf1\ansi\ansicpg1252\fromhtml1 \fbidis \deff0{\fonttbl"
    rb"{\f0\fswiss Arial;}}"
    b"\r\n"
    rb"{\*\htmltag19 <html>}{\*\htmltag34 <head>}"
    rb"{\*\htmltag177 <style>p \{ color: red; \}</style>}"
    rb"{\*\htmltag41 </head>}{\*\htmltag50 <body>}"
    rb"{\*\htmltag64 <p>}\htmlrtf {\htmlrtf0 Hi Tomasz,"
    rb"{\*\htmltag116 <br>}\htmlrtf \line \htmlrtf0 "
    b"\r\n"
    rb"the download link gives \'93404\'94 \u8364?5 \{ok\}."
    rb"\htmlrtf\par}\htmlrtf0{\*\htmltag72 </p>}"
    rb"{\*\htmltag58 </body>}{\*\htmltag27 </html>}}")


def outlook_mail(data: bytes, text: str = "") -> bytes:
    """A mail as Outlook sends it to a non-Outlook server: the body in
    winmail.dat, the text part empty."""
    return mail_with([("winmail.dat", "application/ms-tnef", data)], text)


def test_rtf_only_body_becomes_the_new_text():
    mail = read_mail(outlook_mail(winmail(b"", [], rtf=PLAIN_RTF)))
    assert "licence key for order 1042 never arrived" in mail.new_text
    assert "Grüße, Małgorzata" in mail.full_text  # \'hh in cp1252, \u with ?
    assert "Arial" not in mail.full_text
    assert mail.attachments == []


def test_rtf_from_html_goes_through_the_html_path():
    mail = read_mail(outlook_mail(winmail(b"", [], rtf=HTML_RTF)))
    assert mail.html.startswith("<html><head><style>")
    assert "<br>" in mail.html
    assert "\u201c404\u201d €5 {ok}." in mail.new_text
    assert "Hi Tomasz," in mail.new_text
    assert "color" not in mail.full_text  # styles are not text


def test_html_rtf_keeps_only_html_and_shared_text():
    found = read_rtf(HTML_RTF)
    assert found.html.count("Hi Tomasz,") == 1
    assert "\\line" not in found.html and "fonttbl" not in found.html


def test_a_plain_body_beside_the_rtf_wins():
    data = winmail(b"Plain words from Outlook.", [], rtf=PLAIN_RTF)
    mail = read_mail(outlook_mail(data))
    assert mail.new_text == "Plain words from Outlook."


def test_the_mails_own_text_wins_and_the_rtf_is_not_read():
    data = winmail(b"", [], packed_rtf=b"garbage that is no RTF at all")
    mail = read_mail(outlook_mail(data, text="Typed in the mail itself."))
    assert mail.new_text == "Typed in the mail itself."
    assert not any("RTF" in d for d in mail.defects)


def test_damaged_compressed_rtf_is_a_defect_not_a_crash():
    packed = bytearray(compressed_rtf.compress(PLAIN_RTF))
    packed[-3] ^= 0xFF  # the CRC no longer matches
    mail = read_mail(outlook_mail(winmail(b"", [], packed_rtf=packed)))
    assert mail.full_text == ""
    assert "the RTF body of winmail.dat is damaged" in mail.defects


def test_rtf_claiming_a_huge_size_is_not_unpacked():
    packed = bytearray(compressed_rtf.compress(PLAIN_RTF))
    struct.pack_into("<I", packed, 4, MAX_RTF + 1)
    found = read_compressed(bytes(packed))
    assert found.text == "" and "too large" in found.defect


def test_rtf_body_and_files_both_come_out():
    data = winmail(b"", [(b"notes.txt", b"Order 1042\n")], rtf=PLAIN_RTF)
    mail = read_mail(outlook_mail(data))
    [item] = mail.attachments
    assert item.filename == "notes.txt" and item.kept
    assert "never arrived" in mail.new_text
