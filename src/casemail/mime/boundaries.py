"""Multiparts the parser could not split, split again from their body.

A multipart whose boundary parameter is missing, misspelt, or lost to a
header folded without its leading space keeps its whole body as one
string. Its delimiter lines are usually still there, so the boundary is
read from the first of them (RFC 2046 section 5.1.1: a line of "--" and
the boundary) and the body is parsed again with it. Nothing here raises.
"""

from __future__ import annotations

import logging
import re
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import Policy

from casemail.mime import parts
from casemail.mime.defects import walk_parts

log = logging.getLogger(__name__)

# A preamble is a line or two ("This is a multi-part message…"); the
# first delimiter comes soon after it.
_FIRST_LINES = 40
MAX_REPAIRS = 20  # each is a parse of its own
_DELIMITER = re.compile(r"^--([^\s][^\r\n]{0,69}?)[ \t]*$")


def repair(message: Message, parse_policy: Policy) -> list[str]:
    """Split again every multipart left unsplit; the defects to record."""
    defects: list[str] = []
    repaired = 0
    for part in walk_parts(message):
        if repaired >= MAX_REPAIRS:
            break
        if not _unsplit(part):
            continue
        children = _split(part, parse_policy)
        if children:
            part.set_payload(children)
            repaired += 1
            defects.append("multipart boundary read from its body")
    return defects


def _unsplit(part: Message) -> bool:
    return parts.content_type(part).startswith("multipart/") \
        and isinstance(parts.payload(part), str)


def guess_boundary(body: str) -> str | None:
    """The boundary of the first delimiter line, if it comes again."""
    lines = body.splitlines()
    for n, line in enumerate(lines[:_FIRST_LINES]):
        found = _DELIMITER.match(line)
        if found is None:
            continue
        boundary = found.group(1).removesuffix("--")
        again = any(li.startswith("--" + boundary) for li in lines[n + 1:])
        return boundary if boundary and again else None
    return None


def _split(part: Message, parse_policy: Policy) -> list[Message]:
    body = parts.payload(part)
    boundary = guess_boundary(body) if isinstance(body, str) else None
    if boundary is None or '"' in boundary:
        return []
    head = (f"Content-Type: {parts.content_type(part)}; "
            f'boundary="{boundary}"\n\n')
    data = (head + body).encode("utf-8", "surrogateescape")
    try:
        again = BytesParser(_class=EmailMessage,
                            policy=parse_policy).parsebytes(data)
    except Exception:  # a body the parser cannot take even now
        log.debug("multipart body could not be split again")
        return []
    children = parts.payload(again)
    return children if isinstance(children, list) and children else []
