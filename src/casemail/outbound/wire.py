"""The bytes of a message we send, written directly.

Every mail casemail sends has one of two shapes, known in advance: a
``multipart/alternative`` of a plain-text and an HTML part, and that
inside a ``multipart/mixed`` with the files of a relayed reply. The
email package's generator walks a general tree and sends every header
through its policy; writing our two shapes ourselves costs a small part
of that, and every customer reply pays it inside the intake's
transaction.

What the output promises:

- CRLF line ends and no line over 998 octets (RFC 5322 2.1.1); header
  lines are folded at white space to 78 where they can be (2.2.3);
- 7-bit only, since not every relay offers 8BITMIME (RFC 6152): text
  parts quoted-printable, files base64 (RFC 2045 6.7, 6.8); header text
  that is not ASCII as encoded words (RFC 2047); file names that are not
  plain as RFC 2231 parameters, continued over several lines when long;
- no header value can end its line early: CR and LF inside a value
  become spaces, so nothing a customer typed can add a header.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Sequence
from email.header import Header
from urllib.parse import quote

FOLD_AT = 78
# RFC 2045 5.1: a type and subtype are tokens.
_TOKEN = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")
# A file name fit to write as a quoted-string as it is.
_PLAIN_NAME = re.compile(r'^[A-Za-z0-9 ._()\[\]+,=-]{1,60}$')
# RFC 2231 parameter values are cut in pieces of about this many octets.
_PIECE = 60


def header(name: str, value: str) -> str:
    """One header field, CRLF included, folded or encoded as it needs."""
    value = _one_line(value)
    if not value.isascii():
        encoded = Header(value, "utf-8", header_name=name).encode(
            linesep="\r\n", maxlinelen=FOLD_AT)
        return f"{name}: {encoded}\r\n"
    return _folded(f"{name}: {value}") + "\r\n"


def _folded(line: str) -> str:
    """Fold at the last space before FOLD_AT, again and again; a word
    longer than that stays whole (an id has no space to fold at)."""
    if len(line) <= FOLD_AT:
        return line
    out = []
    while len(line) > FOLD_AT:
        cut = line.rfind(" ", 0, FOLD_AT)
        if cut <= 0:
            cut = line.find(" ", FOLD_AT)
            if cut < 0:
                break
        out.append(line[:cut])
        line = line[cut:]  # the space begins the next line (RFC 5322 3.2.2)
    out.append(line)
    return "\r\n".join(out)


def _one_line(value: str) -> str:
    if "\r" in value or "\n" in value:
        value = value.replace("\r\n", " ").replace("\r", " ").replace(
            "\n", " ")
    return value


def boundary() -> str:
    # "=_" cannot appear in quoted-printable or base64 text (RFC 2045
    # 6.7 writes "=" as "=3D"), so the boundary never occurs in a part.
    return "=_casemail_" + secrets.token_hex(12)


def text_part(text: str, subtype: str) -> bytes:
    """A UTF-8 text part, quoted-printable, with its headers."""
    crlf = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    if not crlf.endswith("\r\n"):
        crlf += "\r\n"
    body = binascii.b2a_qp(crlf.encode("utf-8"), istext=True)
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            ).encode() + body


def file_part(filename: str, content_type: str, data: bytes) -> bytes:
    """A file as an attachment, base64, with its headers."""
    if not _TOKEN.match(content_type or ""):
        content_type = "application/octet-stream"
    disposition = "attachment;" + _filename_parameter(filename or "attachment")
    body = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (f"Content-Type: {content_type}\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            f"Content-Disposition: {disposition}\r\n\r\n").encode() + body


def _filename_parameter(name: str) -> str:
    """``filename`` as a plain quoted-string when it is short and plain,
    else RFC 2231 encoded and continued (``filename*0*=utf-8''…``)."""
    name = _one_line(name)
    if _PLAIN_NAME.match(name):
        return f' filename="{name}"'
    encoded = quote(name, safe="")
    pieces = []
    while encoded:
        cut = min(_PIECE, len(encoded))
        # Never cut inside a %XX triplet.
        percent = encoded.rfind("%", max(0, cut - 2), cut)
        if percent != -1:
            cut = percent
        pieces.append(encoded[:cut])
        encoded = encoded[cut:]
    if len(pieces) == 1:
        return f"\r\n filename*=utf-8''{pieces[0]}"
    params = []
    for n, piece in enumerate(pieces):
        charset = "utf-8''" if n == 0 else ""
        params.append(f"\r\n filename*{n}*={charset}{piece}")
    return ";".join(params)


def multipart(subtype: str, parts: Sequence[bytes]) -> tuple[str, bytes]:
    """The Content-Type value and the body of a multipart of ``parts``
    (RFC 2046 5.1.1)."""
    mark = boundary()
    sep = f"--{mark}\r\n".encode()
    body = b"".join(sep + part + b"\r\n" for part in parts)
    body += f"--{mark}--\r\n".encode()
    return f'multipart/{subtype}; boundary="{mark}"', body


def message(headers: Sequence[tuple[str, str]], text: str, html: str,
            files: Sequence[tuple[str, str, bytes]] = ()) -> bytes:
    """The whole message: our headers, then the body of our shape."""
    ctype, body = multipart("alternative", [text_part(text, "plain"),
                                            text_part(html, "html")])
    if files:
        inner = f"Content-Type: {ctype}\r\n\r\n".encode() + body
        ctype, body = multipart(
            "mixed", [inner, *(file_part(*f) for f in files)])
    head = "".join(header(name, value) for name, value in headers if value)
    head += "MIME-Version: 1.0\r\n" + header("Content-Type", ctype)
    return head.encode("ascii") + b"\r\n" + body
