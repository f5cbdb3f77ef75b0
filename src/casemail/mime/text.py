"""The body: which parts are text, which are files, and the text itself.

We prefer text/plain; HTML-only mail is turned into readable text with
inscriptis. Several text parts around an attachment (Apple Mail sends
them) stay in order. ``format=flowed`` is joined (RFC 3676).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from email.message import Message

import lxml.etree
from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig

from casemail.mime import parts
from casemail.mime.defects import MAX_PARTS

log = logging.getLogger(__name__)

# "strict" keeps the text flush left instead of indenting block quotes.
_HTML_CONFIG = ParserConfig(css=CSS_PROFILES["strict"])
TEXT_TYPES = ("text/plain", "text/html")
# Parts for machines, not people: report bodies (RFC 3464, 8098, 5965)
# and signatures (RFC 1847). The classifier reads them from the tree.
SKIPPED_TYPES = frozenset({
    "message/delivery-status", "message/disposition-notification",
    "message/feedback-report", "text/rfc822-headers",
    "message/global-delivery-status", "application/pgp-signature",
    "application/pkcs7-signature", "application/x-pkcs7-signature",
})


@dataclass
class _Tally:
    parts: int = 0


@dataclass
class Body:
    """What the walk over a mail's tree found."""

    # In order: ("plain", text) or ("html", markup); HTML is turned into
    # text only once chosen, since alternatives can be many and large.
    segments: list[tuple[str, str]] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    files: list[Message] = field(default_factory=list)  # attachment parts
    defects: list[str] = field(default_factory=list)
    tally: _Tally = field(default_factory=_Tally)  # shared by sub-walks


def walk(message: Message) -> Body:
    body = Body()
    _visit(message, body, depth=0)
    return body


def _visit(part: Message, body: Body, depth: int) -> None:
    ctype = parts.content_type(part)
    if depth > 40:
        body.defects.append("parts nested too deep")
        return
    # More parts than any person's mail has: the rest is not read (each
    # costs a parse and a sniff); a defect says so, the raw keeps them.
    body.tally.parts += 1
    if body.tally.parts > MAX_PARTS:
        if body.tally.parts == MAX_PARTS + 1:
            body.defects.append(f"more than {MAX_PARTS} parts: the rest "
                                f"of the mail is not read")
        return
    if ctype in SKIPPED_TYPES:
        return
    if _is_file(part, ctype):
        body.files.append(part)
        return
    if ctype.startswith("multipart/") and not part.is_multipart():
        # Its boundary is lost and could not be guessed: the body is
        # still what the person wrote, boundaries and all.
        _add_plain(part, body)
        return
    if part.is_multipart():
        if ctype == "multipart/alternative":
            _visit_alternative(part, body, depth)
            return
        for child in _children(part):
            _visit(child, body, depth + 1)
        return
    if ctype == "text/html":
        html, defects = parts.text_of(part)
        body.defects.extend(defects)
        body.html.append(html)
        body.segments.append(("html", html))
        return
    if ctype.startswith("text/"):
        _add_plain(part, body)
        return
    body.files.append(part)  # an unnamed non-text leaf is still a file


def _add_plain(part: Message, body: Body) -> None:
    text, defects = parts.text_of(part)
    body.defects.extend(defects)
    ct_params = parts.params(parts.raw_header(part, "content-type"))
    if ct_params.get("format", "").lower() == "flowed":
        delsp = ct_params.get("delsp", "").lower() == "yes"
        text = unflow(text, delsp=delsp)
    body.segments.append(("plain", text))


def _children(part: Message) -> list[Message]:
    payload = parts.payload(part)
    return payload if isinstance(payload, list) else []


def _is_file(part: Message, ctype: str) -> bool:
    """Whether a part is a file rather than body text.

    RFC 2183: ``attachment`` says so outright; a text part with a file
    name is a file too (Apple Mail sends .txt files as ``inline``).
    """
    disposition = parts.disposition(part)
    if ctype == "message/rfc822" or ctype == "application/ms-tnef":
        return True
    if ctype.startswith("multipart/"):
        return False
    if disposition == "attachment":
        return True
    if ctype in TEXT_TYPES:
        return bool(parts.filename(part))
    return not ctype.startswith("text/") or bool(parts.filename(part))


def _visit_alternative(part: Message, body: Body, depth: int) -> None:
    """RFC 2046 section 5.1.4: the same content in several forms.

    We take the plain form when it has words, else the richest other
    one; the HTML form is kept for display and inline images either way.
    """
    options = []
    for child in _children(part):
        sub = Body(tally=body.tally)
        _visit(child, sub, depth + 1)
        options.append((parts.content_type(child), sub))
    if not options:
        return
    plain = [s for t, s in options if t == "text/plain"
             and "".join(text for _, text in s.segments).strip()]
    chosen = plain[0] if plain else options[-1][1]
    body.segments.extend(chosen.segments)
    body.defects.extend(d for _, s in options for d in s.defects)
    for _, sub in options:
        body.html.extend(sub.html)
        body.files.extend(sub.files)


def segment_text(segments: list[tuple[str, str]]) -> str:
    """The chosen body parts as one text, HTML made readable."""
    texts = [html_to_text(content) if kind == "html" else content
             for kind, content in segments]
    return "\n\n".join(t.strip("\n") for t in texts if t.strip())


# inscriptis lays HTML out well but costs some 25 microseconds a tag:
# a mail of small tags would hold the listener for minutes. Above this
# many tags the text is taken straight from lxml's tree instead.
MAX_LAID_OUT_TAGS = 10_000
# A line break goes before each block element's tags, in the source.
_BLOCK_TAG = re.compile(
    r"<(?=/?(p|div|br|li|tr|h[1-6]|blockquote|pre|table|ul|ol|hr|dt|dd)"
    r"[\s/>])", re.I)


def html_to_text(html: str) -> str:
    """Readable text from HTML; scripts and styles are dropped."""
    if not html.strip():
        return ""
    try:
        if html.count("<") > MAX_LAID_OUT_TAGS:
            text = _tree_text(html)
        else:
            text = get_text(html, _HTML_CONFIG)
    except Exception:  # lxml refuses some byte soup
        log.debug("HTML conversion failed, stripping tags")
        text = re.sub(r"<[^>]*>", " ", html)
    lines = [line.rstrip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def _tree_text(html: str) -> str:
    """Plain text of a large HTML document, all in C and linear: a line
    break before each block, scripts and styles dropped, tags gone."""
    marked = _BLOCK_TAG.sub("\n<", html)
    root = lxml.etree.fromstring(marked, lxml.etree.HTMLParser())
    if root is None:
        return ""
    lxml.etree.strip_elements(root, "script", "style", "head", "template",
                              with_tail=False)
    return str(lxml.etree.tostring(root, method="text", encoding="unicode"))


def unflow(text: str, *, delsp: bool) -> str:
    """Join the soft line breaks of ``format=flowed`` (RFC 3676)."""
    out: list[str] = []
    # The paragraph being joined, as pieces: adding to one string would
    # copy it once per line, and a long paragraph would take minutes.
    depth_of_carry, carry = 0, []
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # section 4.4: space-stuffing
        if carry and depth_of_carry != depth:
            out.append(_quoted(depth_of_carry, "".join(carry)))
            carry = []
        # Section 4.3: "-- " is the signature line, never flowed.
        if content.endswith(" ") and not (content == "-- " and not carry):
            carry.append(content[:-1] if delsp else content)
            depth_of_carry = depth
            continue
        out.append(_quoted(depth, "".join([*carry, content])))
        carry = []
    if carry:
        out.append(_quoted(depth_of_carry, "".join(carry)))
    return "\n".join(out)


def _quoted(depth: int, content: str) -> str:
    return (">" * depth + " " + content) if depth else content
