"""Build test mails whose parts are made in code (TNEF, ZIP archives)."""

from __future__ import annotations

import io
import struct
import zipfile
from email.message import EmailMessage
from pathlib import Path

import compressed_rtf

from casemail.mime.model import ReadMail
from casemail.mime.reader import read_mail

ATT_BODY, ATT_RENDDATA, ATT_TITLE, ATT_DATA = 0x800C, 0x9002, 0x8010, 0x800F
ATT_MAPIPROPS, PR_RTF_COMPRESSED, PT_BINARY = 0x9003, 0x1009, 0x0102


def _tnef_object(level: int, name: int, kind: int, data: bytes) -> bytes:
    # A TNEF attribute: level, id, length, data, 16-bit sum of the data.
    return (struct.pack("<BHHI", level, name, kind, len(data)) + data
            + struct.pack("<H", sum(data) & 0xFFFF))


def _mapi_binary(prop_id: int, data: bytes) -> bytes:
    # One MAPI property of type PT_BINARY: count of values, length, the
    # data padded to four bytes ([MS-OXTNEF] section 2.1.3.4).
    padding = bytes(-len(data) % 4)
    return (struct.pack("<HHII", PT_BINARY, prop_id, 1, len(data))
            + data + padding)


def winmail(body: bytes, files: list[tuple[bytes, bytes]], *,
            rtf: bytes = b"", packed_rtf: bytes = b"") -> bytes:
    """A winmail.dat as Outlook writes it: message body, then files.

    ``rtf`` is compressed into the MAPI property PR_RTF_COMPRESSED, as
    Outlook sends its body; ``packed_rtf`` is put there as it is."""
    out = struct.pack("<IH", 0x223E9F78, 1)
    out += _tnef_object(1, 0x9006, 8, struct.pack("<I", 0x10000))
    out += _tnef_object(1, 0x9007, 8, struct.pack("<II", 1252, 0))
    if body:
        out += _tnef_object(1, ATT_BODY, 2, body)
    if rtf or packed_rtf:
        packed = packed_rtf or compressed_rtf.compress(rtf)
        props = struct.pack("<I", 1) + _mapi_binary(PR_RTF_COMPRESSED, packed)
        out += _tnef_object(1, ATT_MAPIPROPS, 6, props)
    for name, data in files:
        out += _tnef_object(2, ATT_RENDDATA, 6, bytes(14))
        out += _tnef_object(2, ATT_TITLE, 1, name + b"\x00")
        out += _tnef_object(2, ATT_DATA, 6, data)
    return out


def zip_of(entries: dict[str, bytes],
           method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def forge_zip(data: bytes, *, size: int | None = None,
              flags: int | None = None) -> bytes:
    """Rewrite what every header of a ZIP claims: the unpacked size, or
    the flags (APPNOTE.TXT 4.3.7 and 4.3.12), as a forger would."""
    out = bytearray(data)
    for signature, flag_at, size_at in ((b"PK\x03\x04", 6, 22),
                                        (b"PK\x01\x02", 8, 24)):
        at = out.find(signature)
        while at != -1:
            if size is not None:
                struct.pack_into("<I", out, at + size_at, size)
            if flags is not None:
                struct.pack_into("<H", out, at + flag_at, flags)
            at = out.find(signature, at + 4)
    return bytes(out)


def mail_with(files: list[tuple[str, str, bytes]], text: str = "See attached.",
              ) -> bytes:
    """A plain mail from an invented customer with the given files."""
    message = EmailMessage()
    message["From"] = "Nora Quist <nora.quist@example.org>"
    message["To"] = "case+abc@reply.example.test"
    message["Subject"] = "Files"
    message["Message-ID"] = "<made-in-test@example.org>"
    message.set_content(text)
    for filename, ctype, data in files:
        maintype, subtype = ctype.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype,
                               filename=filename)
    return message.as_bytes()


FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mime"


def read_fixture(name: str) -> ReadMail:
    return read_mail((FIXTURES / name).read_bytes())
