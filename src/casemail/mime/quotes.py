"""New text versus removed history: what the author wrote this time.

Replies carry the earlier conversation below (or, rarely, above) the new
words, introduced by a line each client writes its own way and in the
writer's language; phones add "Sent from my …". We cut at the first such
marker and keep what was cut as ``removed``.
"""

from __future__ import annotations

import logging

import lxml.etree
import lxml.html

from casemail.mime import quote_rules
from casemail.mime.text import html_to_text

log = logging.getLogger(__name__)


# A reply that opens with more quoted blocks than this (each below the
# last) is not a reply layout we know; the rest is kept as new text.
MAX_TOP_BLOCKS = 20


def split_reply(text: str) -> tuple[str, str]:
    """``(new, removed)`` for a reply body; together they hold every line.

    Top-posted replies are cut at the first marker. When the marker is
    the first thing in the body (bottom-posting, or a forward with a note
    below), the quoted block at the top is removed and what follows is
    the new text. When nothing is left — a reply of only the quoted
    history, only a signature, or blank — the new text is empty and the
    whole body is removed: the author wrote nothing this time.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    # Peel quoted blocks off the top, one after the other; a loop, not
    # recursion, so a body of a thousand "--" lines cannot exhaust the
    # stack (and each pass starts where the last ended: linear time).
    blocks: list[tuple[int, int]] = []
    start = 0
    new, tail = "", ""
    while start < len(lines):
        cut = quote_rules.first_marker(lines, start)
        if cut is None or len(blocks) >= MAX_TOP_BLOCKS:
            new = _tidy(lines[start:])
            break
        if any(line.strip() for line in lines[start:cut]):
            new, tail = _tidy(lines[start:cut]), _tidy(lines[cut:])
            break
        # XXX: an Outlook reply with nothing typed above its header block
        # reads like a forward without a note: the quoted mail below the
        # block is kept as new text. Only the mail's own subject (RE:
        # or FW:) tells the two apart, and it is not looked at here.
        end = quote_rules.end_of_top_block(lines, cut)
        blocks.append((start, end))
        start = end
    return _unwind(lines, blocks, new, tail)


def _unwind(lines: list[str], blocks: list[tuple[int, int]], new: str,
            tail: str) -> tuple[str, str]:
    """Put the peeled top blocks back in front of what was removed."""
    if not new.strip():
        return "", _tidy(lines)
    removed = [_tidy(lines[start:end]) for start, end in blocks]
    removed += [tail] if tail else []
    return new, "\n\n".join(removed).strip("\n")


def _tidy(lines: list[str]) -> str:
    return "\n".join(lines).strip("\n").rstrip()


# Elements mail clients wrap around quoted history or a signature. Each
# path tests that the attribute exists before reading it: much cheaper
# on the many elements that have none.
_HTML_MARKERS = (
    "//*[@class][contains(concat(' ', normalize-space(@class), ' '),"
    " ' gmail_quote ')]",
    "//*[@class][contains(concat(' ', normalize-space(@class), ' '),"
    " ' gmail_signature ')]",
    "//blockquote[@type='cite']",
    "//*[@id][@id='divRplyFwdMsg' or @id='appendonsend' or @id='Signature'"
    " or @id='mail-editor-reference-message-container'"
    " or @id='stopSpelling' or @id='OLK_SRC_BODY_SECTION']",
    "//*[@class][contains(@class, 'moz-cite-prefix')"
    " or contains(@class, 'moz-signature')"
    " or contains(@class, 'yahoo_quoted')"
    " or contains(@class, 'OutlookMessageHeader')"
    " or contains(@class, 'protonmail_quote')"
    " or contains(@class, 'zmail_extra')]",
    "//div[@style][contains(@style, 'border-top:solid #E1E1E1')"
    " or contains(@style, 'border-top:solid #B5C4DF')]",
)
# Looking for the markers costs some ten microseconds a tag; a document
# with more tags than a long Outlook thread is split by its text alone.
MAX_MARKED_TAGS = 20_000


def split_html(html: str) -> tuple[str, str] | None:
    """``(new_html, quoted_html)`` cut at the first quote marker, or None.

    Everything from the marker element to the end of the document is
    history: clients put it last, and a signature sits just above it.
    """
    if html.count("<") > MAX_MARKED_TAGS:
        return None
    try:
        root = lxml.html.document_fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return None
    marker = _first_marker(root)
    if marker is None:
        return None
    quoted = _cut_from(marker)
    return lxml.html.tostring(root, encoding="unicode"), quoted


def _first_marker(root: lxml.html.HtmlElement) -> lxml.html.HtmlElement | None:
    found = []
    for path in _HTML_MARKERS:
        try:
            found.extend(root.xpath(path))
        except lxml.etree.XPathError:
            continue
    order = {el: n for n, el in enumerate(root.iter())}
    found = [el for el in found if el in order and el is not root]
    return min(found, key=order.__getitem__) if found else None


def _cut_from(marker: lxml.html.HtmlElement) -> str:
    """Detach the marker and every element after it; return their HTML."""
    cut: list[str] = []
    node = marker
    while node is not None and node.getparent() is not None:
        parent = node.getparent()
        following = list(node.itersiblings())
        for element in [node, *following] if node is marker else following:
            cut.append(lxml.html.tostring(element, encoding="unicode"))
            parent.remove(element)
        node = parent
    return "".join(cut)


def split_html_reply(html: str, text: str | None = None) -> tuple[str, str]:
    """``(new, removed)`` as text for an HTML-only reply.

    The clients' own markers are more reliable than the text they leave
    behind, so we cut there first, then run the text rules on the rest.
    ``text`` is the whole HTML as text, when the caller has it already
    (turning a large HTML body into text is the expensive step).
    """
    whole = html_to_text(html) if text is None else text
    parts = split_html(html)
    if parts is None:
        return split_reply(whole)
    new, removed = split_reply(html_to_text(parts[0]))
    if not new.strip():
        # Nothing above the marker: a reply written below the quote, or
        # nothing at all. XXX: a signature the client marks only in
        # HTML (a Gmail signature with no "-- " line), alone in the
        # mail, is then read as new text.
        return split_reply(whole)
    quoted = html_to_text(parts[1])
    return new, "\n\n".join(t for t in (removed, quoted) if t.strip())
