"""Containers: ZIP files we may keep, and Outlook's winmail.dat we unpack.

A ZIP is kept only within limits on its entries, their total size and
their compression ratio, so that nobody downstream unpacks a zip bomb;
the sizes are measured by inflating, since the archive's directory may
lie, and ZIP files inside it are opened too, to a small depth.
winmail.dat (TNEF) is unpacked with tnefparse; its files go through the
same allowlist as any other attachment.
"""

from __future__ import annotations

import io
import logging
import struct
import zipfile
import zlib
from dataclasses import dataclass, field

from tnefparse import TNEF

from casemail.mime import rtf
from casemail.mime.charsets import decode_bytes
from casemail.mime.model import AttachmentPart

log = logging.getLogger(__name__)

ZIP_MAX_ENTRIES = 1000  # in the whole tree, nested archives included
ZIP_MAX_TOTAL = 200 * 2**20  # unpacked, the whole tree
ZIP_MAX_RATIO = 100  # unpacked / packed, per entry and overall
# Below this, a file of repeated lines may well compress 100:1.
ZIP_RATIO_FLOOR = 2**20
ZIP_MAX_DEPTH = 3  # a zip in a zip in a zip, and no deeper
ZIP_MAX_INNER = 20 * 2**20  # an inner archive is held to be opened
ZIP_LISTED = 200  # entry names recorded for display
_CHUNK = 64 * 1024  # read at a time; never more than 4 chunks come out
_LOCAL_HEADER = b"PK\x03\x04"


class _Refused(Exception):
    """A reason, in words, to refuse the whole archive."""


@dataclass
class _Tree:
    """What one archive and those inside it have cost so far."""

    packed: int  # the size of the outermost archive
    names: list[str] = field(default_factory=list)
    count: int = 0
    unpacked: int = 0

    def charge(self, size: int) -> None:
        self.unpacked += size
        if self.unpacked > ZIP_MAX_TOTAL:
            raise _Refused(f"the ZIP file would unpack to more than "
                           f"{ZIP_MAX_TOTAL // 2**20} MB")
        if _too_dense(self.unpacked, self.packed):
            raise _Refused(_BOMB)


_BOMB = "the ZIP file is compressed suspiciously well (a possible zip bomb)"
_DAMAGED = "the ZIP file is damaged and cannot be opened"
_INNER_TOO_LARGE = (f"a ZIP file inside the ZIP file is over "
                    f"{ZIP_MAX_INNER // 2**20} MB")


def _too_dense(unpacked: int, packed: int) -> bool:
    return unpacked > ZIP_RATIO_FLOOR and unpacked > ZIP_MAX_RATIO * packed


def check_zip(data: bytes, part: AttachmentPart) -> str:
    """Refusal reason for a ZIP outside our limits, "" to keep it.

    The directory of an archive is only its own claim: every entry is
    inflated, in a bounded stream that stops at the first limit it
    passes, and archives inside it are opened the same way. Names of
    nested entries are recorded with their path (``inner.zip/a.txt``).

    XXX: each ZIP of a mail has its own 200 MB allowance; inflating
    that costs about a second, so a mail of several such ZIPs holds the
    worker for seconds. The allowance should be the mail's.
    """
    tree = _Tree(packed=len(data))
    try:
        _check_archive(data, "", tree, depth=1)
        reason = ""
    except _Refused as refusal:
        reason = str(refusal)
    part.details["entries"] = tree.names[:ZIP_LISTED]
    part.details["entry_count"] = tree.count
    part.details["uncompressed_size"] = tree.unpacked
    return reason


def _check_archive(data: bytes, path: str, tree: _Tree, depth: int) -> None:
    entries = _directory(data)
    for info in entries:
        tree.count += 1
        if len(tree.names) < ZIP_LISTED:
            tree.names.append(path + info.filename)
    if tree.count > ZIP_MAX_ENTRIES:
        raise _Refused(f"the ZIP file holds more than {ZIP_MAX_ENTRIES} "
                       f"files")
    for info in entries:
        inner = _inflate(data, info, tree)
        if inner is None:
            continue
        if depth >= ZIP_MAX_DEPTH:
            raise _Refused(f"the ZIP file holds ZIP files nested more "
                           f"than {ZIP_MAX_DEPTH} deep")
        _check_archive(inner, f"{path}{info.filename}/", tree, depth + 1)


def _directory(data: bytes) -> list[zipfile.ZipInfo]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError,
            EOFError, NotImplementedError) as exc:
        raise _Refused(_DAMAGED) from exc


def _inflate(data: bytes, info: zipfile.ZipInfo, tree: _Tree) -> bytes | None:
    """Unpack one entry, counting it, keeping nothing but an inner ZIP.

    APPNOTE.TXT section 4.4.4: bit 0 of the flags marks an encrypted
    entry, which cannot be looked into; section 4.4.5: of the methods,
    we read 0 (stored) and 8 (deflate), what every desktop writes."""
    if info.flag_bits & 0x1:
        raise _Refused("the ZIP file is encrypted, so what it holds "
                       "cannot be checked")
    view = memoryview(data)[_data_start(data, info):]
    if info.compress_type == zipfile.ZIP_STORED:
        content = _stored(view, info, tree)
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        content = _deflated(view, info, tree)
    else:
        raise _Refused(f"the ZIP file is compressed in a way we do not "
                       f"check (method {info.compress_type})")
    if content is None:
        return None
    if len(content) > ZIP_MAX_INNER:
        raise _Refused(_INNER_TOO_LARGE)
    return bytes(content)


def _data_start(data: bytes, info: zipfile.ZipInfo) -> int:
    # APPNOTE.TXT section 4.3.7: a 30-byte local header, then the name
    # and the extra field, then the data.
    offset = info.header_offset
    header = data[offset:offset + 30]
    if len(header) < 30 or not header.startswith(_LOCAL_HEADER):
        raise _Refused(_DAMAGED)
    name_length, extra_length = struct.unpack_from("<HH", header, 26)
    return offset + 30 + name_length + extra_length


def _stored(view: memoryview, info: zipfile.ZipInfo,
            tree: _Tree) -> memoryview | None:
    size = info.compress_size
    if size > len(view) or size != info.file_size:
        raise _Refused(_DAMAGED)
    tree.charge(size)
    content = view[:size]
    if zlib.crc32(content) != info.CRC:
        raise _Refused(_DAMAGED)
    return content if _inner_archive(content) else None


def _deflated(view: memoryview, info: zipfile.ZipInfo,
              tree: _Tree) -> bytearray | None:
    """Inflate in a bounded stream; hold the content only while it may
    be an archive of its own (it starts like one)."""
    inflater = zlib.decompressobj(-15)  # raw deflate, RFC 1951
    held: bytearray | None = bytearray()
    read = size = crc = 0
    while not inflater.eof:
        chunk = inflater.unconsumed_tail or view[read:read + _CHUNK]
        if not inflater.unconsumed_tail:
            read += len(chunk)
        if not chunk:
            raise _Refused(_DAMAGED)  # the stream ends before its end
        try:
            piece = inflater.decompress(chunk, 4 * _CHUNK)
        except zlib.error as exc:
            raise _Refused(_DAMAGED) from exc
        size += len(piece)
        crc = zlib.crc32(piece, crc)
        tree.charge(len(piece))
        consumed = read - len(inflater.unconsumed_tail)
        if _too_dense(size, consumed - len(inflater.unused_data)):
            raise _Refused(_BOMB)
        held = _hold(held, piece)
    # The directory lied about the entry (or it is damaged): an unpacker
    # trusting the directory would be misled, so the archive goes.
    if size != info.file_size or crc != info.CRC:
        raise _Refused(_DAMAGED)
    return held if held is not None and _inner_archive(held) else None


def _hold(held: bytearray | None, piece: bytes) -> bytearray | None:
    if held is None:
        return None
    held += piece
    if len(held) >= 4 and not _inner_archive(held):
        return None
    if len(held) > ZIP_MAX_INNER:
        raise _Refused(_INNER_TOO_LARGE)
    return held


def _inner_archive(content: bytes | bytearray | memoryview) -> bool:
    return bytes(content[:4]) == _LOCAL_HEADER


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
