"""Outlook's RTF body: compressed RTF out of winmail.dat, made readable.

Outlook often sends a mail's only body as compressed RTF inside
winmail.dat (the MAPI property PR_RTF_COMPRESSED, [MS-OXRTFCP]).
``compressed_rtf`` undoes the compression and ``striprtf`` turns the RTF
into plain text. When the RTF merely wraps an HTML mail (``\\fromhtml1``,
[MS-OXRTFEX]) we take the HTML back out instead, so that it goes through
the same HTML-to-text path as any HTML mail.

Decompression and both conversions are pure Python and cost about a
second a megabyte, and this runs on the listener's worker thread for
every mail: bodies past a few hundred KB are left in the raw mail.
"""

from __future__ import annotations

import codecs
import logging
import re
import struct
from dataclasses import dataclass

from compressed_rtf import decompress
from striprtf.striprtf import rtf_to_text

log = logging.getLogger(__name__)

# The compressed body of a long mail with a signature logo is some tens
# of KB; past these the cost would be counted in seconds.
MAX_PACKED = 256 * 1024
MAX_RTF = 2 * 2**20


@dataclass
class RtfBody:
    """What the RTF body gave: text, or HTML to be made text."""

    text: str = ""
    html: str = ""
    defect: str = ""


def read_compressed(packed: bytes) -> RtfBody:
    """The body from compressed RTF ([MS-OXRTFCP]).

    Never raises. The sizes are checked first: the header's own claim of
    the unpacked size ([MS-OXRTFCP] section 2.1.3.1.1, RAWSIZE), and
    the unpacked RTF again, since a header can lie."""
    if len(packed) < 16:
        return RtfBody(defect="the RTF body of winmail.dat is damaged")
    raw_size = struct.unpack_from("<I", packed, 4)[0]
    if len(packed) > MAX_PACKED or raw_size > MAX_RTF:
        return RtfBody(defect="the RTF body of winmail.dat is too large "
                              "to read; the raw mail keeps it")
    try:
        rtf = decompress(packed)
    except Exception as exc:  # the library raises plain Exception
        log.debug("compressed RTF unreadable: %s", type(exc).__name__)
        return RtfBody(defect="the RTF body of winmail.dat is damaged")
    if not isinstance(rtf, bytes | bytearray) or len(rtf) > MAX_RTF:
        return RtfBody(defect="the RTF body of winmail.dat is too large "
                              "to read; the raw mail keeps it")
    return read_rtf(bytes(rtf))


def read_rtf(rtf: bytes) -> RtfBody:
    """Text (or the encapsulated HTML) of an RTF document; never raises."""
    source = rtf.rstrip(b"\x00").decode("latin-1")
    codepage = _codepage(source)
    try:
        if re.search(r"\\fromhtml1?(?![a-z])", source[:4096]):
            return RtfBody(html=_html_of(source, codepage))
        return RtfBody(text=rtf_to_text(source, encoding=codepage,
                                        errors="replace"))
    except Exception as exc:  # striprtf trips on some broken groups
        log.debug("RTF body unreadable: %s", type(exc).__name__)
        return RtfBody(defect="the RTF body of winmail.dat could not be "
                              "read")


def _codepage(source: str) -> str:
    found = re.search(r"\\ansicpg(\d+)", source[:4096])
    name = f"cp{found.group(1)}" if found else "cp1252"
    try:
        codecs.lookup(name)
    except LookupError:
        return "cp1252"
    return name


# One RTF token: a group brace, a control word with its optional number
# (and the one space that ends it), a hex escape, a control symbol, or
# a run of text.
_TOKEN = re.compile(
    r"([{}])|\\([a-z]{1,32})(-?\d{1,10})? ?|\\'([0-9a-f]{2})"
    r"|\\([^a-z])|([^\\{}\r\n]+)|[\r\n]+", re.I)
_SYMBOLS = {"par": "\r\n", "line": "\r\n", "tab": "\t", "{": "{",
            "}": "}", "\\": "\\", "~": "\u00a0", "_": "-"}
# Groups whose content is not the document: font and colour tables and
# the like. Every ``{\*\...}`` group is skipped too, except htmltag.
_SKIPPED = frozenset({"fonttbl", "colortbl", "stylesheet", "info",
                      "pict", "object", "header", "footer",
                      "listtable", "listoverridetable", "rsidtbl"})


@dataclass
class _State:
    skip: bool = False  # inside a group that is not content
    rtf_only: bool = False  # between \htmlrtf and \htmlrtf0
    in_tag: bool = False  # inside {\*\htmltagN ...}
    uc: int = 1  # characters that stand in for each \u


def _html_of(source: str, codepage: str) -> str:
    """The HTML an RTF document encapsulates ([MS-OXRTFEX] section 2.1.3).

    Kept: the content of ``\\htmltag`` groups, and text outside them
    unless it is marked RTF-only by ``\\htmlrtf``; skipped: the tables
    and every other ignorable destination."""
    out: list[str] = []
    pending = bytearray()  # \'hh bytes, decoded together (multi-byte)
    stack: list[_State] = []
    state = _State()
    fallback = 0  # \u fallback characters still to drop
    starred = False  # the group began with \*
    for match in _TOKEN.finditer(source):
        brace, word, number, hexbyte, symbol, text = match.groups()
        newline = match.group(0)[0] in "\r\n"  # not content in RTF
        if pending and hexbyte is None and not newline:
            out.append(pending.decode(codepage, "replace"))
            pending.clear()
        if brace == "{":
            stack.append(state)
            state = _State(state.skip, state.rtf_only, state.in_tag,
                           state.uc)
            starred = False
            continue
        if brace == "}":
            state = stack.pop() if stack else _State()
            continue
        emit = not state.skip and (state.in_tag or not state.rtf_only)
        if word is not None:
            word = word.lower()
            if word.startswith("htmltag"):
                state.in_tag, state.skip = True, False
                state.rtf_only = False
            elif word == "htmlrtf":
                state.rtf_only = number != "0"
            elif starred or word in _SKIPPED:
                state.skip = True
            elif word == "uc" and number:
                state.uc = int(number)
            elif word == "u" and number and emit:
                out.append(chr(int(number) % 0x10000))
                fallback = state.uc
            elif word in _SYMBOLS and emit:
                out.append(_SYMBOLS[word])
            starred = False
            continue
        if symbol == "*":
            starred = True
            continue
        starred = False
        if fallback:  # the plain stand-ins for a \u character
            dropped = min(fallback, len(text or " "))
            fallback -= dropped
            text = text[dropped:] if text else None
            if not text:
                continue
        if not emit:
            continue
        if hexbyte is not None:
            pending.append(int(hexbyte, 16))
        elif symbol is not None:
            out.append(_SYMBOLS.get(symbol, ""))
        elif text is not None:
            out.append(text)
    if pending:
        out.append(pending.decode(codepage, "replace"))
    return "".join(out)
