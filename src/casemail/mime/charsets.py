"""The charset fallback chain, for bodies and for header words.

Mail arrives with charset labels that are missing, unknown to Python, or
simply wrong (windows-1252 bytes labelled ``us-ascii`` or ``utf-8``). We try
the declared charset first, then UTF-8, then windows-1252, then latin-1,
which maps every byte and so always ends the chain. Nothing here raises.
"""

from __future__ import annotations

import binascii
import codecs
import logging
import re

log = logging.getLogger(__name__)

FALLBACKS = ("utf-8", "windows-1252", "latin-1")

# Labels seen in real mail that Python does not know by that name.
ALIASES = {
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "x-sjis": "shift_jis",
    "shift-jis": "shift_jis",
    "x-unknown": "",
    "unknown-8bit": "",
    "unknown": "",
    "x-user-defined": "",
    "default": "",
    "charset": "",
    "utf8": "utf-8",
    "iso-8859-8-i": "iso-8859-8",
    "gb2312": "gb18030",  # GB2312 mail often carries GBK characters
    "gbk": "gb18030",
    "cp-850": "cp850",
    "ansi_x3.4-1968": "ascii",
}

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


def codec_for(label: str | None) -> str | None:
    """The Python codec for a charset label, ``None`` if unknown."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    # RFC 2231 section 5 allows a language suffix: "utf-8*en".
    name = name.split("*", 1)[0]
    name = ALIASES.get(name, name)
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):
        return None


def decode_bytes(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode ``data``; return the text and a defect ("" when none).

    The declared charset is tried strictly first; a label that is unknown
    or that the bytes do not fit is reported, then the fallback chain runs.
    """
    codec = codec_for(declared)
    defect = ""
    if declared and codec is None:
        defect = f"unknown charset {declared.strip()[:40]!r}"
    if codec:
        text = _try(data, codec)
        if text is not None:
            return text, ""
        defect = f"text does not fit its charset {declared.strip()[:40]!r}"
    for name in FALLBACKS:
        text = _try(data, name)
        if text is not None:
            return text, defect
    return data.decode("latin-1"), defect  # unreachable: latin-1 maps all


def _try(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError, ValueError):
        return None
    except Exception:  # a codec with its own idea of failure
        log.debug("codec %s failed unexpectedly", codec)
        return None


def surrogates_to_text(value: str, declared: str | None = None) -> str:
    """Turn a header string holding raw 8-bit bytes into readable text.

    The stdlib parser keeps undecodable header bytes as surrogate escapes;
    RFC 6532 makes UTF-8 legal there, and older clients send their local
    charset, so the same chain applies.
    """
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    raw = value.encode("utf-8", "surrogateescape")
    return decode_bytes(raw, declared)[0]


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words in a header value, never raising.

    Adjacent words of one charset are joined before decoding, so a
    character split across two words (RFC 2047 section 5 forbids it,
    clients do it anyway) comes out whole. Whitespace between encoded
    words is dropped (section 6.2); raw 8-bit text around them goes
    through the fallback chain.
    """
    if "=?" not in value:
        return surrogates_to_text(value)
    out: list[str] = []
    run: list[bytes] = []
    run_charset = ""
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[pos:match.start()]
        if between and (not run or between.strip()):
            out.append(_flush(run, run_charset))
            run = []
            out.append(surrogates_to_text(between))
        charset, data = _word_bytes(match)
        if run and charset != run_charset:
            out.append(_flush(run, run_charset))
            run = []
        run.append(data)
        run_charset = charset
        pos = match.end()
    out.append(_flush(run, run_charset))
    out.append(surrogates_to_text(value[pos:]))
    return "".join(out)


def _word_bytes(match: re.Match[str]) -> tuple[str, bytes]:
    charset, encoding, text = match.group(1), match.group(2), match.group(3)
    if encoding.lower() == "q":
        raw = text.replace("_", " ").encode("ascii", "surrogateescape")
        return charset, binascii.a2b_qp(raw)
    return charset, lenient_b64(text.encode("ascii", "surrogateescape"))


def _flush(run: list[bytes], charset: str) -> str:
    if not run:
        return ""
    return decode_bytes(b"".join(run), charset)[0]


def lenient_b64(data: bytes) -> bytes:
    """Base64 that skips stray characters and repairs the padding."""
    try:
        # Non-strict mode already skips characters outside the alphabet.
        return binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        pass
    clean = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    clean = clean[: len(clean) - len(clean) % 4 if len(clean) % 4 == 1
                  else len(clean)]
    clean += b"=" * (-len(clean) % 4)
    try:
        return binascii.a2b_base64(clean)
    except (binascii.Error, ValueError):
        return b""
