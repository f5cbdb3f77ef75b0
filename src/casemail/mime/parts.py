"""One MIME part, read tolerantly: its type, parameters, name and bytes.

The stdlib's header objects raise on some broken headers, so everything
here works from the raw header text the parser kept (``raw_items``), with
our own forgiving parsing. Nothing here raises.

A large mail reaches the parser without its long base64 runs
(``Elided``): a file's body is then decoded straight from the received
bytes, and never held as the parser's text, its lines and a copy.
"""

from __future__ import annotations

import binascii
import re
import urllib.parse
from dataclasses import dataclass
from email.message import Message

from casemail.mime.charsets import (
    decode_bytes,
    decode_words,
    lenient_b64,
    surrogates_to_text,
)

_TOKEN = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
_CONTINUATION = re.compile(r"^(?P<name>[^*]+)\*(?P<n>\d+)(?P<star>\*?)$")


def raw_header(part: Message, name: str) -> str | None:
    """The first ``name`` header as sent, unfolded; ``None`` when absent."""
    wanted = name.lower()
    for key, value in _raw_items(part):
        if key.lower() == wanted:
            return _unfold(value)
    return None


def raw_headers(part: Message, name: str) -> list[str]:
    wanted = name.lower()
    return [_unfold(v) for k, v in _raw_items(part) if k.lower() == wanted]


def _raw_items(part: Message) -> list[tuple[str, str]]:
    # ``_headers`` holds what ``raw_items`` yields; a str() guards against
    # header objects a caller may have set.
    return [(str(k), str(v)) for k, v in getattr(part, "_headers", [])]


def _unfold(value: str) -> str:
    # RFC 5322 section 2.2.3: unfolding removes CRLF before whitespace.
    return re.sub(r"\r?\n(?=[ \t])", "", value).strip()


def content_type(part: Message) -> str:
    """The declared ``type/subtype`` in lower case; RFC 2045 default."""
    value = raw_header(part, "content-type")
    if value is None:
        # RFC 2046 section 5.1.5: parts of a digest default to a message.
        return part.get_default_type()
    match = _TOKEN.match(value.strip().lower())
    return match.group(0) if match else "text/plain"


def params(value: str | None) -> dict[str, str]:
    """Parameters of a Content-Type/-Disposition value, decoded.

    Handles quoting, RFC 2231 continuations, charsets and language tags,
    and the RFC 2047 words and raw 8-bit bytes that clients put in names.
    """
    if not value:
        return {}
    pieces: dict[str, dict[int, tuple[str, bool]]] = {}
    plain: dict[str, str] = {}
    for key, raw in _split_params(value):
        match = _CONTINUATION.match(key)
        if match:
            slot = pieces.setdefault(match["name"], {})
            slot[int(match["n"])] = (raw, bool(match["star"]))
        elif key.endswith("*"):
            pieces.setdefault(key[:-1], {})[0] = (raw, True)
        else:
            plain.setdefault(key, _plain_value(raw))
    for key, slot in pieces.items():
        plain[key] = _rfc2231_value(slot)  # RFC 2231 wins over the plain one
    return plain


def _split_params(value: str) -> list[tuple[str, str]]:
    out = []
    for chunk in _split_semicolons(value)[1:]:
        key, sep, raw = chunk.partition("=")
        if not sep:
            continue
        out.append((key.strip().lower(), raw.strip()))
    return out


def _split_semicolons(value: str) -> list[str]:
    chunks, current, quoted, escaped = [], [], False, False
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            chunks.append("".join(current))
            current = []
            continue
        current.append(ch)
    chunks.append("".join(current))
    return chunks


def _plain_value(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
        raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
    # Not allowed by RFC 2047 section 5, yet what many clients send.
    return decode_words(raw.strip('"'))


def _rfc2231_value(slot: dict[int, tuple[str, bool]]) -> str:
    charset = ""
    chunks: list[bytes] = []
    for n in sorted(slot):
        raw, encoded = slot[n]
        raw = raw.strip('"') if not encoded else raw
        if encoded and n == min(slot):
            # RFC 2231 section 4: charset'language'value on the first one.
            head = raw.split("'", 2)
            if len(head) == 3:
                charset, raw = head[0], head[2]
        if encoded:
            chunks.append(urllib.parse.unquote_to_bytes(
                raw.encode("utf-8", "surrogateescape")))
        else:
            chunks.append(raw.encode("utf-8", "surrogateescape"))
    return decode_bytes(b"".join(chunks), charset or None)[0]


def disposition(part: Message) -> str:
    value = raw_header(part, "content-disposition") or ""
    return value.split(";", 1)[0].strip().lower()


def filename(part: Message) -> str:
    """The name the sender gave the file, decoded for a person."""
    name = params(raw_header(part, "content-disposition")).get("filename")
    if not name:
        name = params(raw_header(part, "content-type")).get("name", "")
    return surrogates_to_text(name).strip()


def charset(part: Message) -> str | None:
    return params(raw_header(part, "content-type")).get("charset") or None


def transfer_encoding(part: Message) -> str:
    """The Content-Transfer-Encoding, forgiving spaces, case and ';'."""
    value = raw_header(part, "content-transfer-encoding") or ""
    token = re.split(r"[\s;,]+", value.strip().strip('"').lower() or "7bit")
    return token[0] or "7bit"


def payload(part: Message) -> list[Message] | str | None:
    """The payload as the parser left it: the child parts, or the body
    with raw 8-bit bytes kept as surrogate escapes. Not get_payload(),
    which decodes such a body with the declared charset and raises
    ValueError when the label holds a NUL."""
    value = getattr(part, "_payload", None)
    if isinstance(value, list):
        return [p for p in value if isinstance(p, Message)]
    return value if isinstance(value, str) else None


def payload_bytes(part: Message) -> tuple[bytes, str]:
    """The part's decoded bytes and a defect ("" when none)."""
    # Not get_payload(): on 8-bit text it decodes with the declared
    # charset and replaces what does not fit, before our chain can try.
    payload = getattr(part, "_payload", None)
    if isinstance(payload, list):
        return b"", ""
    if not isinstance(payload, str):
        return b"", "part payload unreadable"
    cte = transfer_encoding(part)
    elided: Elided | None = getattr(part, _ELIDED, None)
    if elided is not None and cte == "base64":
        return lenient_b64(elided.base64_of(payload)), ""
    # The bytes parser kept undecodable bytes as surrogate escapes.
    raw = payload.encode("utf-8", "surrogateescape")
    if cte == "base64":
        return lenient_b64(raw), ""
    if cte == "quoted-printable":
        return binascii.a2b_qp(raw), ""
    if cte in ("x-uuencode", "uuencode", "x-uue", "uue"):
        return _uudecode(raw), ""
    if cte not in ("7bit", "8bit", "binary"):
        return raw, f"unknown transfer encoding {cte[:30]!r}"
    return raw, ""


def _uudecode(raw: bytes) -> bytes:
    out = []
    for line in raw.splitlines():
        if line.startswith((b"begin ", b"end")) or not line.strip():
            continue
        try:
            out.append(binascii.a2b_uu(line))
        except binascii.Error:
            continue
    return b"".join(out)


def text_of(part: Message) -> tuple[str, list[str]]:
    """A text part as str, through the charset chain; and its defects."""
    data, defect = payload_bytes(part)
    text, charset_defect = decode_bytes(data, charset(part))
    defects = [d for d in (defect, charset_defect) if d]
    return text.replace("\r\n", "\n").replace("\r", "\n"), defects


# -- bodies the parser did not see ---------------------------------------

_ELIDED = "casemail_elided"


@dataclass(frozen=True)
class Elided:
    """The long base64 runs of one mail, cut out before parsing.

    Each run stands in the parsed text as one line, ``mark`` and its
    number; ``spans`` says where its bytes are in ``raw`` (without the
    run's last line break, which stays, as the parser strips the one
    before a boundary). ``mark`` is random per mail: a sender cannot
    write one into a mail.
    """

    mark: str
    raw: bytes
    spans: tuple[tuple[int, int], ...]

    def base64_of(self, text: str) -> bytes | memoryview:
        """The base64 of a body: when it is one stand-in and white space
        (which base64 skips), a view of the received bytes, no copy."""
        pieces = self._split(text)
        if len(pieces) == 3 and not (pieces[0] + pieces[2]).strip():
            start, end = self.spans[int(pieces[1])]
            return memoryview(self.raw)[start:end]
        return self.bytes_of(text)

    def bytes_of(self, text: str) -> bytes:
        """``text`` with its stand-ins back to the bytes they replace."""
        pieces = self._split(text)
        out: list[bytes | memoryview] = []
        for i, piece in enumerate(pieces):
            if i % 2:
                start, end = self.spans[int(piece)]
                out.append(memoryview(self.raw)[start:end])
            else:
                out.append(piece.encode("utf-8", "surrogateescape"))
        return b"".join(out)

    def _split(self, text: str) -> list[str]:
        """Text, number, text, number, ..., text: what splitting at the
        pattern mark-and-digits gives, without compiling a pattern for
        every mail's mark (a tenth of a millisecond each)."""
        first, *rest = text.split(self.mark)
        out = [first]
        for piece in rest:
            digits = 0
            while digits < len(piece) and piece[digits].isdecimal():
                digits += 1
            if digits:
                out += [piece[:digits], piece[digits:]]
            else:  # a mark with no number is no stand-in: text
                out[-1] += self.mark + piece
        return out

    def adopt(self, part: Message) -> None:
        """Give ``part`` back the text the parser would have seen,
        unless it is a file in base64, which ``payload_bytes`` then
        decodes from the received bytes. Text and attached mail are
        read by others too (the classifier): they get it all back."""
        for name in ("_payload", "preamble", "epilogue"):
            text = getattr(part, name, None)
            if not isinstance(text, str) or self.mark not in text:
                continue
            if name == "_payload" and _stays_encoded(part):
                setattr(part, _ELIDED, self)
                continue
            whole = self.bytes_of(text)
            setattr(part, name, whole.decode("ascii", "surrogateescape"))


def _stays_encoded(part: Message) -> bool:
    kind = content_type(part).partition("/")[0]
    return (kind not in ("text", "message", "multipart")
            and transfer_encoding(part) == "base64")
