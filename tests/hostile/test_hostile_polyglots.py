"""Pictures and PDFs that are web pages too are refused; real ones not."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from casemail.mime.attachments import Budget, judge

PAGE = b"<html><body><script>fetch('/api/cases')</script></body></html>"


def _judge(data: bytes, name: str):
    return judge(data, filename=name, declared="",
                 budget=Budget(20 * 2**20, 25 * 2**20))


def photo(kind: str, seed: int, size: tuple[int, int] = (320, 240),
          **options: object) -> bytes:
    """A picture of noise: its compressed bytes are as random as a
    photo's, the worst case for a chance match."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


def pdf_of_text(lines: list[str]) -> bytes:
    """A small valid PDF with uncompressed text, written by hand."""
    text = "\n".join(f"({line}) Tj T*" for line in lines)
    stream = f"BT /F1 11 Tf 14 TL 72 720 Td\n{text}\nET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += (b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(objects) + 1, xref))
    return bytes(out)


@pytest.mark.parametrize(("kind", "name"), [("PNG", "screen.png"),
                                            ("JPEG", "photo.jpg"),
                                            ("GIF", "anim.gif"),
                                            ("PDF", "scan.pdf")])
def test_a_real_picture_or_pdf_is_kept(kind: str, name: str):
    item = _judge(photo(kind, 1), name)
    assert item.kept, item.reason


def test_three_hundred_noisy_photos_are_all_kept():
    """Random compressed data holds no whole tag name by chance."""
    refused = [seed for seed in range(300)
               if not _judge(photo("JPEG", seed, (160, 120), quality=95),
                             "p.jpg").kept]
    assert refused == []


def test_a_photo_with_exif_and_xmp_metadata_is_kept():
    xmp = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
           b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
           b'"http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'
           b'<?xpacket end="w"?>')
    exif = Image.Exif()
    exif[0x010F] = "Camera Maker"
    item = _judge(photo("JPEG", 3, exif=exif, xmp=xmp), "holiday.jpg")
    assert item.kept, item.reason


def test_a_pdf_of_words_about_web_pages_is_kept():
    data = pdf_of_text(["Your order 1042: the html page would not load,",
                        "the script said svg and iframe were blocked."])
    item = _judge(data, "notes.pdf")
    assert item.content_type == "application/pdf"
    assert item.kept, item.reason


@pytest.mark.parametrize(("data", "name"), [
    (photo("GIF", 2) + PAGE, "cat.gif"),
    (photo("PNG", 2) + b"\n<!-- --><svg/onload=alert(1)>", "screen.png"),
    (photo("JPEG", 2, (1200, 900), quality=95) + PAGE, "big.jpg"),
    (pdf_of_text(["<iframe src=//attacker.example>"]), "invoice.pdf"),
    (pdf_of_text(["(a link)"]).replace(b"BT", b"BT % JavaScript:x\n", 1),
     "terms.pdf"),
])
def test_a_picture_or_pdf_that_is_a_page_too_is_refused(data, name):
    item = _judge(data, name)
    assert not item.kept
    assert item.reason == "the file also contains a web page or script"


def test_a_page_hidden_in_the_middle_of_a_large_file_is_not_looked_for():
    """Only the first and last 64 KB are read: a bound on the work."""
    head = photo("JPEG", 4, (1200, 900), quality=95)
    assert len(head) > 2 * 64 * 1024
    data = head[:70_000] + PAGE + head[70_000:]
    assert _judge(data, "middle.jpg").kept
