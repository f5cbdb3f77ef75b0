"""Attachments by what they really are: sniffing, the allowlist, limits.

The declared Content-Type and the file name are the sender's claims; the
bytes decide. libmagic looks at the first 64 KB only (on the whole file
it reads up to 7 MB and can take 70 ms on a file of zeros). What we keep
is decided by a small registry keyed on the sniffed type, so allowing a
type is adding one entry. ``mime.filetypes`` holds the type rules.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from casemail.mime import archives, filetypes
from casemail.mime.model import AttachmentPart

log = logging.getLogger(__name__)

MB = 2**20


@dataclass
class Budget:
    """What is left of the per-mail allowance while reading one mail."""

    max_attachment_size: int
    max_attachments_total: int
    used: int = 0


# A check returns a refusal reason, or "" to keep the file.
Check = Callable[[bytes, AttachmentPart], str]


def _keep(data: bytes, part: AttachmentPart) -> str:
    return ""


def _check_binary(data: bytes, part: AttachmentPart) -> str:
    # A polyglot: a valid picture or PDF that a browser, handed the
    # same bytes, would render as a page and whose scripts it would run.
    if filetypes.hides_markup(data):
        return "the file also contains a web page or script"
    return ""


def _check_image(data: bytes, part: AttachmentPart) -> str:
    # SVG is XML that may carry scripts; it is an image only by name.
    if part.content_type == "image/svg+xml":
        return "SVG images may contain scripts and are not accepted"
    return _check_binary(data, part)


REGISTRY: dict[str, Check] = {
    "application/pdf": _check_binary,
    "text/plain": _keep,
    "application/zip": archives.check_zip,
}


def check_for(sniffed: str) -> Check | None:
    if sniffed.startswith("image/"):
        return _check_image
    return REGISTRY.get(sniffed)


def judge(data: bytes, *, filename: str, declared: str, budget: Budget,
          inline: bool = False, content_id: str = "") -> AttachmentPart:
    """Decide on one file: sniff it, check it, charge it to the budget."""
    sniffed = filetypes.sniff(data)
    part = AttachmentPart(
        filename=filename, safe_name=safe_name(filename, sniffed),
        declared_type=declared, content_type=sniffed, size=len(data),
        sha256=hashlib.sha256(data).hexdigest(), kept=False, reason="",
        data=data, inline=inline, content_id=content_id)
    mismatch = contradiction(filename, declared, sniffed)
    if mismatch:
        part.details["mismatch"] = mismatch
    part.reason = _refusal(data, part, budget)
    part.kept = not part.reason
    if part.kept:
        budget.used += part.size
        part.reason = mismatch
    return part


# Names that a desktop runs or a browser renders when the file is opened
# from a download folder, whatever the bytes: source code passes as
# plain text, and a picture can be a valid page too (a polyglot).
_RUNNABLE = frozenset({
    "js", "mjs", "jse", "vbs", "vbe", "wsf", "wsh", "hta", "ps1", "psm1",
    "bat", "cmd", "com", "exe", "scr", "pif", "msi", "lnk", "jar", "sh",
    "command", "app", "py", "pl", "rb", "php", "html", "htm", "xhtml",
    "shtml", "svg", "xml", "url", "reg", "cpl", "dll", "chm", "desktop"})


def _runnable_name(part: AttachmentPart) -> str:
    ext = part.safe_name.rpartition(".")[2].lower() \
        if "." in part.safe_name else ""
    if ext in _RUNNABLE:
        return (f"the file is named .{ext}, which a computer would run "
                f"or open as a web page")
    return ""


def _refusal(data: bytes, part: AttachmentPart, budget: Budget) -> str:
    if part.size > budget.max_attachment_size:
        return (f"the file is {_mb(part.size)}, more than the "
                f"{_mb(budget.max_attachment_size)} allowed for one file")
    check = check_for(part.content_type)
    if check is None:
        return filetypes.not_allowed_reason(part.content_type)
    reason = check(data, part) or _runnable_name(part)
    if reason:
        return reason
    if budget.used + part.size > budget.max_attachments_total:
        return (f"the files of this mail together exceed the "
                f"{_mb(budget.max_attachments_total)} allowed for one mail")
    return ""


def _mb(size: int) -> str:
    if size < MB:
        return f"{max(1, round(size / 1024))} KB"
    return f"{size / MB:.1f} MB".replace(".0 MB", " MB")


def contradiction(filename: str, declared: str, sniffed: str) -> str:
    """Words for a declared type or extension the content contradicts."""
    notes = []
    if declared and not filetypes.same_kind(declared, sniffed):
        notes.append(f"declared as {declared}")
    guessed = mimetypes.guess_type(filename, strict=False)[0] \
        if filename else None
    if guessed and not filetypes.same_kind(guessed, sniffed):
        ext = filename.rsplit(".", 1)[-1][:10]
        notes.append(f"named .{ext}")
    if not notes:
        return ""
    return f"{' and '.join(notes)} but the content is {sniffed}"


_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
# Device names Windows opens instead of a file, with any extension and
# with spaces before it: the consoles (CONIN$, CONOUT$), CLOCK$ of old,
# and the ports numbered with superscript digits too (COM¹, LPT³).
_RESERVED = re.compile(
    r"^(con|prn|aux|nul|conin\$|conout\$|clock\$|com[\d¹²³]"
    r"|lpt[\d¹²³]) *(\..*)?$", re.I)
MAX_NAME_BYTES = 120


def safe_name(filename: str, sniffed: str = "") -> str:
    """A name fit for any file system: one component, printable, short.

    The name a person sees stays ``filename``; this one is for disk,
    archives and Content-Disposition of files we send on.
    """
    name = unicodedata.normalize("NFC", filename)
    name = re.split(r"[/\\]", name)[-1]  # no directories, either style
    name = "".join(ch for ch in name
                   if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name).strip(" .")
    if _RESERVED.match(name):
        name = "_" + name
    if not name:
        ext = mimetypes.guess_extension(sniffed or "", strict=False) or ""
        name = "attachment" + ext
    return _shorten(name)


def _shorten(name: str) -> str:
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext) > 10:
        stem, ext = name, ""
    room = MAX_NAME_BYTES - len(ext.encode("utf-8")) - 1
    short = stem.encode("utf-8")[:room].decode("utf-8", "ignore")
    return f"{short}.{ext}" if ext else short
