"""Containers: ZIP files we may keep, and Outlook's winmail.dat we unpack.

A ZIP is kept only within limits on its entries, their total size and
their compression ratio, so that nobody downstream unpacks a zip bomb.
winmail.dat (TNEF) is unpacked with tnefparse; its files go through the
same allowlist as any other attachment.
"""

from __future__ import annotations

import io
import logging
import zipfile
from dataclasses import dataclass, field

from tnefparse import TNEF

from casemail.mime import rtf
from casemail.mime.charsets import decode_bytes
from casemail.mime.model import AttachmentPart

log = logging.getLogger(__name__)

ZIP_MAX_ENTRIES = 1000
ZIP_MAX_TOTAL = 200 * 2**20  # uncompressed
ZIP_MAX_RATIO = 100  # uncompressed / compressed, per entry and overall
ZIP_LISTED = 200  # entry names recorded for display


def check_zip(data: bytes, part: AttachmentPart) -> str:
    """Refusal reason for a ZIP outside our limits, "" to keep it.

    XXX: the sizes are those the archive's directory declares; an archive
    that lies about them passes here, and nested archives are not opened.
    Whoever unpacks a kept ZIP must still stream with a size cap.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError,
            EOFError, NotImplementedError):
        return "the ZIP file is damaged and cannot be opened"
    part.details["entries"] = [e.filename for e in entries[:ZIP_LISTED]]
    part.details["entry_count"] = len(entries)
    if len(entries) > ZIP_MAX_ENTRIES:
        return f"the ZIP file holds more than {ZIP_MAX_ENTRIES} files"
    total = sum(e.file_size for e in entries)
    part.details["uncompressed_size"] = total
    if total > ZIP_MAX_TOTAL:
        return (f"the ZIP file would unpack to more than "
                f"{ZIP_MAX_TOTAL // 2**20} MB")
    packed = sum(e.compress_size for e in entries)
    worst = max((e.file_size / max(e.compress_size, 1) for e in entries),
                default=0)
    if worst > ZIP_MAX_RATIO or total > ZIP_MAX_RATIO * max(packed, 1):
        return ("the ZIP file is compressed suspiciously well "
                "(a possible zip bomb)")
    return ""


@dataclass
class Unpacked:
    """What an Outlook winmail.dat held."""

    files: list[tuple[str, bytes]] = field(default_factory=list)
    body: str = ""
    html: str = ""
    defect: str = ""  # winmail.dat itself could not be read
    body_defect: str = ""  # its body could not


def unpack_tnef(data: bytes, *, want_body: bool = True) -> Unpacked:
    """The files and body inside a winmail.dat; never raises.

    ``want_body`` False skips the RTF body, which is costly to read and
    not needed when the mail has a text of its own."""
    try:
        tnef = TNEF(data, do_checksum=False)
    except Exception as exc:  # tnefparse raises many kinds on bad input
        log.debug("winmail.dat unreadable: %s", type(exc).__name__)
        return Unpacked(defect="winmail.dat could not be unpacked")
    out = Unpacked()
    for attachment in tnef.attachments:
        try:
            name = attachment.long_filename() or attachment.name or ""
            payload = attachment.data or b""
        except Exception:
            out.defect = "a file inside winmail.dat could not be read"
            continue
        if isinstance(name, bytes):
            name = decode_bytes(name)[0]
        out.files.append((str(name).rstrip("\x00"), bytes(payload)))
    out.body = _as_text(getattr(tnef, "body", None))
    out.html = _as_text(getattr(tnef, "htmlbody", None))
    if want_body and not (out.body.strip() or out.html.strip()):
        _read_rtf_body(tnef, out)
    return out


def _read_rtf_body(tnef: TNEF, out: Unpacked) -> None:
    """Outlook's usual body: compressed RTF only (PR_RTF_COMPRESSED).

    tnefparse keeps the compressed bytes apart; its ``rtfbody`` property
    would decompress them without a look at their size first."""
    packed = getattr(tnef, "_rtfbody", None)
    if not isinstance(packed, bytes) or not packed:
        return
    found = rtf.read_compressed(packed)
    out.body, out.html = found.text.strip(), found.html
    out.body_defect = found.defect


def _as_text(value: object) -> str:
    if isinstance(value, bytes):
        return decode_bytes(value.rstrip(b"\x00"))[0]
    return value.rstrip("\x00") if isinstance(value, str) else ""
