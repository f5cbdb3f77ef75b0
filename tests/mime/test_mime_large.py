"""Large mails: their long base64 bodies are decoded from the received
bytes, not from the parser's copy of them, and what is read is the same
as for any mail — files to the byte, text as text, an attached mail
read whole — while reading costs about the size of the files it finds.
"""

from __future__ import annotations

import base64
import hashlib
import random
import struct
import tracemalloc
from email.message import EmailMessage

from mailmaker import mail_with, zip_of

from casemail.mime.reader import read_mail

MB = 2**20


def noise(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def png(size: int) -> bytes:
    """A picture as libmagic knows one: signature, header, then noise."""
    header = struct.pack(">I4sIIBBBBBI", 13, b"IHDR", 640, 480, 8, 2, 0,
                         0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + header + noise(size, 1)


def test_files_of_a_large_mail_are_read_to_the_byte() -> None:
    picture, archive = png(900_000), zip_of({"log.txt": noise(300_000, 2)})
    raw = mail_with([("screen.png", "image/png", picture),
                     ("logs.zip", "application/zip", archive)])
    found = {a.filename: a for a in read_mail(raw).attachments}
    assert found["screen.png"].data == picture
    assert found["screen.png"].sha256 == hashlib.sha256(picture).hexdigest()
    assert found["screen.png"].kept
    assert found["logs.zip"].data == archive
    assert found["logs.zip"].content_type == "application/zip"


def test_a_long_base64_text_body_is_read_as_text() -> None:
    """Text is read by the classifier too: it gets its whole body back."""
    words = " ".join(f"word{n}" for n in range(40_000))
    message = EmailMessage()
    message["From"] = "nora.quist@example.org"
    message["Subject"] = "Long"
    message.set_content(words, cte="base64")
    raw = message.as_bytes()
    assert len(raw) > 300_000
    mail = read_mail(raw)
    assert mail.full_text.strip() == words
    assert mail.message.get_content().strip() == words


def test_an_attached_mail_with_a_large_file_is_read_whole() -> None:
    picture = png(500_000)
    inner = EmailMessage()
    inner["From"] = "ops@vendor.example"
    inner["Subject"] = "Your receipt"
    inner["Message-ID"] = "<inner@vendor.example>"
    inner.set_content("Receipt attached.")
    inner.add_attachment(picture, maintype="image", subtype="png",
                         filename="receipt.png")
    outer = EmailMessage()
    outer["From"] = "nora.quist@example.org"
    outer["Subject"] = "Fwd: Your receipt"
    outer.set_content("See the receipt below.")
    outer.add_attachment(inner)
    mail = read_mail(outer.as_bytes())
    assert [f.message_id for f in mail.forwarded] == ["<inner@vendor.example>"]
    receipt = next(a for a in mail.attachments if a.filename == "receipt.png")
    assert receipt.data == picture
    assert "Receipt attached." in mail.full_text


def test_a_line_that_looks_like_a_stand_in_is_only_text() -> None:
    """The stand-in of a left-out body is random per mail: a sender who
    writes one gets it read back as the text it is."""
    fake = "casemailelided0123456789abcdefn0"
    raw = mail_with([("screen.png", "image/png", png(200_000))],
                    text=f"Before\n{fake}\nAfter")
    mail = read_mail(raw)
    assert fake in mail.full_text
    assert mail.attachments[0].data.startswith(b"\x89PNG")


def test_reading_a_large_mail_costs_about_its_files() -> None:
    """Three files of 2 MB arrive as 8 MB of base64: reading holds the
    6 MB they decode to and little more, never the parser's text and
    lines of the whole mail (which came to six times its size)."""
    raw = mail_with([(f"f{n}.png", "image/png", png(2 * MB))
                     for n in range(3)])
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        mail = read_mail(raw)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert sum(a.size for a in mail.attachments) >= 6 * MB
    assert peak < 1.2 * len(raw)


def test_a_short_base64_run_in_a_large_mail_stays_with_the_parser() -> None:
    small = base64.b64encode(b"tiny file").decode()
    raw = mail_with([("screen.png", "image/png", png(200_000)),
                     ("note.txt", "text/plain", b"tiny file")])
    assert small in raw.decode()
    found = {a.filename: a for a in read_mail(raw).attachments}
    assert found["note.txt"].data == b"tiny file"
