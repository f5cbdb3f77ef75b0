"""The parser's defects, in words an operator understands.

The stdlib records what it had to forgive as defect objects on each part
(RFC 2045-2049 violations mostly); we name them once here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import Message

WORDS = {
    "CloseBoundaryNotFoundDefect": "multipart end boundary missing",
    "StartBoundaryNotFoundDefect": "multipart boundary never found",
    "NoBoundaryInMultipartDefect": "multipart without a boundary",
    "MultipartInvariantViolationDefect": "multipart part that is not one",
    "InvalidMultipartContentTransferEncodingDefect":
        "multipart with an encoding other than 7bit/8bit/binary",
    "FirstHeaderLineIsContinuationDefect":
        "first header line is a continuation",
    "MisplacedEnvelopeHeaderDefect": "mbox 'From ' line among the headers",
    "MissingHeaderBodySeparatorDefect":
        "no blank line between headers and body",
    "InvalidBase64PaddingDefect": "base64 with wrong padding",
    "InvalidBase64CharactersDefect": "base64 with invalid characters",
    "InvalidBase64LengthDefect": "base64 of impossible length",
    "UndecodableBytesDefect": "8-bit bytes where only ASCII is allowed",
    "NonPrintableDefect": "non-printable characters in a header",
    "InvalidHeaderDefect": "malformed header",
    "HeaderMissingRequiredValue": "header without a value",
    "ObsoleteHeaderDefect": "header in obsolete syntax",
    "InvalidDateDefect": "unreadable Date header",
    "NonASCIILocalPartDefect": "non-ASCII address local part",
}
MAX_PARTS = 500


def describe(message: Message) -> list[str]:
    """Words for every defect the parser recorded, tree-wide, once each."""
    found: list[str] = []
    for count, part in enumerate(walk_parts(message)):
        if count >= MAX_PARTS:
            break
        for defect in getattr(part, "defects", []):
            words = _words(defect)
            if words not in found:
                found.append(words)
    return found


def walk_parts(message: Message) -> Iterator[Message]:
    """Every part of the tree, breadth first, without recursion."""
    stack = [message]
    while stack:
        part = stack.pop(0)
        yield part
        # Not get_payload(): see ``parts.payload``.
        children = getattr(part, "_payload", None)
        if isinstance(children, list):
            stack.extend(p for p in children if isinstance(p, Message))


def _words(defect: object) -> str:
    name = type(defect).__name__
    if name in WORDS:
        return WORDS[name]
    # An unknown class: "SomeThingDefect" becomes "some thing".
    spaced = re.sub(r"(?<!^)(?=[A-Z])", " ", name.removesuffix("Defect"))
    return spaced.lower() or "malformed mail"
