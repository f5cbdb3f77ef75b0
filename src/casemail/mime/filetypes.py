"""What a file really is: libmagic, and our own definition of plain text.

libmagic is good at binary formats and loose about text: it calls plain
text with commas ``text/csv``, an HTML fragment ``text/plain``, and an
ELF binary read from a buffer ``application/x-sharedlib``. So for text we
decide ourselves. A file is **plain text** when

- libmagic calls it ``text/plain``, ``text/csv`` or
  ``text/tab-separated-values``;
- it holds no control characters other than tab, line feed, carriage
  return and form feed (no NUL);
- it does not start with ``#!`` (a script) and contains no HTML, XML,
  PHP or script markup (``<html``, ``<script``, ``<div``, ``<?php``,
  ``<?xml``, ``javascript:``, event handlers such as ``onclick=``…).

Everything else libmagic calls ``text/*`` (HTML, XML, shell, Python,
PHP, C…) is not plain text and is refused. The rules are in
``sniff`` below and documented in README.md, "Reading mail".
"""

from __future__ import annotations

import logging
import re

import magic

log = logging.getLogger(__name__)

SNIFF_BYTES = 64 * 1024
PLAIN_LIKE = frozenset({"text/plain", "text/csv", "text/tab-separated-values"})

_MARKUP = re.compile(
    rb"<\s*(!doctype|html|head|body|script|iframe|frame|object|embed|svg"
    rb"|form|meta|link|style|img|a\s|div|span|table|p|br|base|input"
    rb"|button)[\s/>]"
    rb"|<\?(php|xml)|javascript\s*:|\son[a-z]+\s*=\s*[\"']",
    re.I)
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")

# Words for refusals: a person reads these, not a MIME type alone.
KINDS = {
    "text/html": "a web page (HTML)",
    "application/xhtml+xml": "a web page (HTML)",
    "text/x-script": "a script",
    "application/x-dosexec": "a Windows program",
    "application/vnd.microsoft.portable-executable": "a Windows program",
    "application/x-executable": "a program",
    "application/x-sharedlib": "a program",
    "application/x-pie-executable": "a program",
    "application/x-mach-binary": "a program",
    "application/java-archive": "a Java program",
    "application/x-msi": "an installer",
    "application/vnd.ms-cab-compressed": "an installer archive",
    "application/x-ms-shortcut": "a Windows shortcut",
    "application/octet-stream": "data of an unknown kind",
    "inode/x-empty": "an empty file",
    "application/x-empty": "an empty file",
    "message/rfc822": "a mail message",
}


def sniff(data: bytes) -> str:
    """The real type of ``data`` as a MIME type, from its first 64 KB."""
    sample = data[:SNIFF_BYTES]
    if not sample:
        return "inode/x-empty"
    try:
        found = magic.from_buffer(sample, mime=True) or ""
    except Exception:  # libmagic gives up on some inputs
        log.debug("libmagic failed on a %d byte sample", len(sample))
        found = "application/octet-stream"
    found = found.split(";", 1)[0].strip().lower()
    if found.startswith("text/") or found in ("application/javascript",):
        return _text_kind(sample, found)
    return found or "application/octet-stream"


def _text_kind(sample: bytes, found: str) -> str:
    if sample.lstrip().startswith(b"#!"):
        return "text/x-script"
    if _MARKUP.search(sample):
        return "text/html" if found in PLAIN_LIKE else found
    if found not in PLAIN_LIKE:
        return found
    if _CONTROL.search(sample):
        return "application/octet-stream"
    return "text/plain"


# What makes a file a web page too when a browser is handed it: the
# whole tag name and the character after it, so that the binary data of
# a photo or a PDF stream matches only by a chance of about one in a
# million a file (for ``<svg``, the shortest). Matched on lowered bytes:
# a pattern that starts with one literal is found by a quick scan, where
# the case-blind alternation stepped through every byte (15x slower).
_ACTIVE_TAG = re.compile(rb"<(?:html|script|svg|iframe)[\s/>]")
_ACTIVE_URL = re.compile(rb"javascript\s*:")


def hides_markup(data: bytes) -> bool:
    """Whether a binary file also holds a web page or a script, at its
    start (where browsers sniff) or its end (where a page appended to a
    picture sits). Only those two 64 KB samples are read."""
    tail = data[max(SNIFF_BYTES, len(data) - SNIFF_BYTES):]
    return any(_ACTIVE_TAG.search(low) or _ACTIVE_URL.search(low)
               for low in (data[:SNIFF_BYTES].lower(), tail.lower()))


def is_script(content_type: str) -> bool:
    return content_type == "text/x-script" or content_type in {
        "text/x-shellscript", "text/x-python", "text/x-perl",
        "text/x-php", "text/x-ruby", "text/javascript",
        "application/javascript", "text/x-msdos-batch", "text/x-tcl",
        "text/x-lua", "text/x-awk", "application/x-powershell"}


def not_allowed_reason(content_type: str) -> str:
    kind = KINDS.get(content_type)
    if kind is None and is_script(content_type):
        kind = "a script"
    if kind is None and content_type.startswith("text/"):
        kind = "text that is not plain text"
    what = f"{kind} ({content_type})" if kind else content_type
    return (f"the file is {what}; we accept only images, PDF, plain text "
            f"and ZIP files")


_ALIASES = {
    "image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png", "application/x-pdf": "application/pdf",
    "application/x-zip-compressed": "application/zip",
    "application/x-zip": "application/zip",
    "application/ms-tnef": "application/vnd.ms-tnef",
}
_VAGUE = frozenset({"", "application/octet-stream", "binary/octet-stream",
                    "application/x-download", "application/download",
                    "application/force-download", "application/unknown"})


def same_kind(claimed: str, sniffed: str) -> bool:
    """Whether a declared or guessed type agrees with the sniffed one.

    A vague claim (octet-stream) agrees with anything; any text claim
    agrees with plain text (CSV, logs, code saved as .txt).
    """
    claimed = _ALIASES.get(claimed.lower().strip(), claimed.lower().strip())
    sniffed = _ALIASES.get(sniffed, sniffed)
    if claimed in _VAGUE or claimed == sniffed:
        return True
    return sniffed == "text/plain" and claimed.startswith("text/")
