"""The mail the benchmark sends: customers replying into their cases.

Two size classes, as the issue asks. "2k" is what a person mostly sends:
a short reply above the quoted history, half of them as plain text, half
as text and HTML from a webmail. "100k" is a reply with one attachment,
a screenshot (PNG) or a receipt (PDF), and now and then a file that is
not allowed (a Windows program), which casemail refuses and tells the
sender about. Every mail differs from the others in its Message-ID, so
none is filed as a duplicate.

A mail is built once per case and size as a head template plus a body;
only the head is formatted per message, so the client copies nothing big.
"""

from __future__ import annotations

import base64
import io
import random
import struct
import zipfile
import zlib
from dataclasses import dataclass

SEQ = b"@SEQ@"
BOUNDARY = "=_bench_boundary_7f3a"


@dataclass(frozen=True)
class Target:
    """A case to write into: its customer's reply address and the
    Message-ID of the notification being answered."""

    case_id: int
    customer: str
    reply_address: str
    in_reply_to: str


@dataclass(frozen=True)
class Template:
    mail_from: str
    rcpt: str
    head: bytes  # contains SEQ, replaced per message
    body: bytes  # dot-stuffed, CRLF, ends with CRLF

    def head_for(self, seq: int) -> bytes:
        return self.head.replace(SEQ, str(seq).encode())

    @property
    def size(self) -> int:
        return len(self.head) + len(self.body)


def templates(targets: list[Target], size: str, *,
              seed: int = 7) -> list[Template]:
    """One template per case for the size class "2k" or "100k"."""
    rng = random.Random(seed)
    make = {"2k": _plain_reply, "100k": _reply_with_file}[size]
    return [make(t, i, rng) for i, t in enumerate(targets)]


def big_mail(target: Target, total: int = 25 * 1024 * 1024) -> Template:
    """A reply carrying a PDF, a PNG and a ZIP, ``total`` bytes in all."""
    rng = random.Random(25)
    each = (total - 4096) * 3 // 4 // 3  # base64 grows by a third
    files = [("statement.pdf", "application/pdf", _pdf(rng, each)),
             ("screen.png", "image/png", _png(rng, each)),
             ("logs.zip", "application/zip", _zip(rng, each))]
    text = _reply_text(rng, "Here are all the files you asked for.")
    return _template(target, _mixed(text, files), "multipart/mixed")


# -- the two classes --


def _plain_reply(target: Target, i: int, rng: random.Random) -> Template:
    text = _reply_text(rng, _OPENERS[i % len(_OPENERS)])
    if i % 2 == 0:
        return _template(target, _lines(text), "text/plain; charset=utf-8")
    # One paragraph a line: RFC 5321 4.5.3.1.6 caps a line at 1000 octets.
    paragraphs = "\n".join(
        f"<p>{line}</p>" for line in text.split("\n") if line)
    html = f"<html><body>\n{paragraphs}\n</body></html>"
    parts = [("text/plain; charset=utf-8", text),
             ("text/html; charset=utf-8", html)]
    body = b""
    for ctype, content in parts:
        body += (f"--{BOUNDARY}\r\nContent-Type: {ctype}\r\n"
                 f"Content-Transfer-Encoding: 8bit\r\n\r\n").encode()
        body += _lines(content)
    body += f"--{BOUNDARY}--\r\n".encode()
    return _template(target, body, "multipart/alternative")


def _reply_with_file(target: Target, i: int,
                     rng: random.Random) -> Template:
    size = 72 * 1024  # about 98 KB once in base64
    if i % 10 == 9:
        files = [("setup.exe", "application/octet-stream", _exe(rng, size))]
    elif i % 2 == 0:
        files = [("screenshot.png", "image/png", _png(rng, size))]
    else:
        files = [("receipt.pdf", "application/pdf", _pdf(rng, size))]
    text = _reply_text(rng, "I attach what I see on my side.")
    return _template(target, _mixed(text, files), "multipart/mixed")


# -- assembling --


def _template(target: Target, body: bytes, ctype: str) -> Template:
    if ctype.startswith("multipart/"):
        ctype += f'; boundary="{BOUNDARY}"'
    head = (
        f"From: Ana Customer <{target.customer}>\r\n"
        f"To: {target.reply_address}\r\n"
        f"Subject: Re: [Case #{target.case_id}] Licence key missing\r\n"
        f"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
        f"Message-ID: <bench-{target.case_id}-@SEQ@@customer.example>\r\n"
        f"In-Reply-To: {target.in_reply_to}\r\n"
        f"References: {target.in_reply_to}\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: {ctype}\r\n"
        f"\r\n").encode()
    return Template(target.customer, target.reply_address, head, body)


def _mixed(text: str, files: list[tuple[str, str, bytes]]) -> bytes:
    body = (f"--{BOUNDARY}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + _lines(text)
    for name, ctype, data in files:
        body += (f"--{BOUNDARY}\r\nContent-Type: {ctype}; name=\"{name}\"\r\n"
                 f"Content-Disposition: attachment; filename=\"{name}\"\r\n"
                 f"Content-Transfer-Encoding: base64\r\n\r\n").encode()
        body += base64.encodebytes(data).replace(b"\n", b"\r\n")
    return body + f"--{BOUNDARY}--\r\n".encode()


def _lines(text: str) -> bytes:
    out = []
    for line in text.split("\n"):
        # RFC 5321 4.5.2: a line starting with "." gets one more.
        out.append("." + line if line.startswith(".") else line)
    return ("\r\n".join(out).rstrip("\r\n") + "\r\n").encode()


_OPENERS = [
    "Thanks, the new key works now.",
    "Sorry, the download link still gives me an error.",
    "I tried again this morning and it is the same.",
    "Could you send the invoice to my work address too?",
]

_HISTORY = (
    "Hello Ana,\n\nthank you for your patience. We have looked at your "
    "order and sent the licence key again; it should arrive within a few "
    "minutes. If the key does not work, please reply with a screenshot of "
    "the message you see, and tell us which version of the software you "
    "installed and on which system.\n\nKind regards,\nthe Lumen Shop team\n"
)


def _reply_text(rng: random.Random, opener: str) -> str:
    news = f"{opener}\nOrder ORD-{rng.randint(10000, 99999)}.\n\nBest,\nAna"
    quoted = "\n".join("> " + line if line else ">"
                       for line in (_HISTORY * 2).split("\n"))
    return (f"{news}\n\nOn Wed, 2 Dec 2026 at 16:20, Lumen Shop "
            f"<notifications@reply.example.test> wrote:\n{quoted}\n"
            f"{_SIGNATURE}")


_SIGNATURE = ("-- \nAna Customer\nSent from my phone; please excuse "
              "typos.\n")


# -- files that sniff as what they are --


def _png(rng: random.Random, size: int) -> bytes:
    width = 256
    height = max(1, size // (width * 3))
    raw = b"".join(b"\0" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


def _pdf(rng: random.Random, size: int) -> bytes:
    stream = rng.randbytes(size)
    return (b"%PDF-1.4\n1 0 obj << /Length " + str(len(stream)).encode()
            + b" >>\nstream\n" + stream + b"\nendstream\nendobj\n%%EOF\n")


def _zip(rng: random.Random, size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("app.log", rng.randbytes(size))
    return buf.getvalue()


def _exe(rng: random.Random, size: int) -> bytes:
    return b"MZ\x90\x00" + b"\0" * 56 + b"PE\0\0" + rng.randbytes(size)
