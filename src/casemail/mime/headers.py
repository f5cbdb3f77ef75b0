"""The headers a person and the threading step care about, read forgivingly.

Works from the raw header text, so a header the stdlib's registry would
choke on still gives what can be read from it. Nothing here raises.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from casemail.mime.charsets import decode_words, surrogates_to_text
from casemail.mime.model import Mailbox
from casemail.mime.parts import raw_header, raw_headers

_MSG_ID = re.compile(r"<([^<>\s]+)>")
MAX_ADDRESSES = 500  # a header with more is abuse, not mail


def subject(message: Message) -> str:
    value = raw_header(message, "subject")
    return "" if value is None else decode_words(value).strip()


def mailboxes(message: Message, name: str) -> list[Mailbox]:
    """Addresses of one header (all occurrences), names decoded."""
    values = [surrogates_to_text(v) for v in raw_headers(message, name)]
    if not values:
        return []
    try:
        pairs = getaddresses(values)
    except Exception:  # pathological input the stdlib rejects
        pairs = [("", v) for v in values]
    out = []
    for display, address in pairs[:MAX_ADDRESSES]:
        if not address and not display:
            continue
        out.append(Mailbox(name=decode_words(display).strip(),
                           address=address.strip()))
    return out


def message_ids(message: Message, name: str) -> list[str]:
    """Message-IDs in In-Reply-To/References, with <>, in order."""
    found: list[str] = []
    for value in raw_headers(message, name):
        for match in _MSG_ID.finditer(surrogates_to_text(value)):
            if f"<{match.group(1)}>" not in found:
                found.append(f"<{match.group(1)}>")
    return found


def message_id(message: Message) -> str:
    """The Message-ID with <>, "" when missing or empty."""
    value = raw_header(message, "message-id")
    if not value:
        return ""
    value = surrogates_to_text(value)
    match = _MSG_ID.search(value)
    if match:
        return f"<{match.group(1)}>"
    bare = value.strip().split()
    # RFC 5322 section 3.6.4 wants the brackets; some senders omit them.
    return f"<{bare[0]}>" if bare and "@" in bare[0] else ""


# Fields each server on the way adds on top of a mail (RFC 5321 4.4 and
# what spam and authentication checks add beside them): a second copy of
# one mail through another hop differs only in these.
_TRACE_FIELD = re.compile(
    rb"(?i)(received|return-path|delivered-to|x-original-to|x-received"
    rb"|authentication-results|arc-[a-z-]+|x-spam-[a-z-]+"
    rb"|x-virus-[a-z-]+):")


def derived_message_id(raw: bytes) -> str:
    """A stable id for a mail without one, from its content: the same
    for a relay's second copy that came through one more hop."""
    return f"<{hashlib.sha256(_past_trace(raw)).hexdigest()[:32]}" \
           "@derived.casemail>"


def _past_trace(raw: bytes) -> bytes:
    """``raw`` from its first field that no server on the way added."""
    start = 0
    while _TRACE_FIELD.match(raw, start):
        end = raw.find(b"\n", start)
        # The field's folded lines begin with white space.
        while end != -1 and raw[end + 1:end + 2] in (b" ", b"\t"):
            end = raw.find(b"\n", end + 1)
        if end == -1:
            return raw
        start = end + 1
    return raw[start:] or raw


def date(message: Message) -> tuple[dt.datetime | None, str]:
    """The Date header as an aware datetime, and a defect ("" if none)."""
    value = raw_header(message, "date")
    if value is None:
        return None, "no Date header"
    try:
        when = parsedate_to_datetime(surrogates_to_text(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None, "unreadable Date header"
    if when.tzinfo is None:
        # RFC 5322 section 3.3: "-0000" means the zone is unknown.
        when = when.replace(tzinfo=dt.UTC)
    return when, ""
