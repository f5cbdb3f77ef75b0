"""Delivery status notifications (RFC 3464) and what they say.

A DSN is a multipart/report (RFC 6522) whose second part,
message/delivery-status, holds one block of per-message fields and one
block per recipient; the third part returns our mail or its headers.  The
stdlib parser already splits the blocks; this module picks the recipient
that failed and turns its fields into a ``BounceReport``.
"""

from __future__ import annotations

import re
from email import policy
from email.message import Message
from email.parser import HeaderParser

from casemail.classify.rule import Inbound, Rule, part_text, register
from casemail.classify.verdict import BOUNCE, BounceReport

RULES: list[Rule] = []

# Not inside a dotted number: "192.0.2.222" holds neither a status code
# nor a reply code.
STATUS = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?![\w.])")
_SMTP_CODE = re.compile(r"(?<![\w.\[])([245])\d\d(?=[ -]|$)", re.M)
_MESSAGE_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>")
_MESSAGE_ID_LINE = re.compile(r"^\s*Message-ID:\s*(<[^<>\s]+@[^<>\s]+>)",
                              re.I | re.M)


_DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
_SUCCESS = frozenset({"delivered", "relayed", "expanded"})


@register(RULES, "dsn-report",
          "multipart/report; report-type=delivery-status", BOUNCE)
def dsn_report(mail: Inbound) -> bool:
    # RFC 6522 3 and RFC 3464 2: the report-type names what the report is.
    message = mail.message
    return (mail.content_type == "multipart/report"
            and str(message.get_param("report-type", "")).lower()
            == "delivery-status" and not reports_success_only(mail))


@register(RULES, "delivery-status-part",
          "a message/delivery-status part anywhere", BOUNCE)
def delivery_status_part(mail: Inbound) -> bool:
    # Some servers nest the report or misspell the report-type; the part
    # itself is still RFC 3464 text.
    return (bool(mail.parts_of_type(*_DSN_TYPES))
            and not reports_success_only(mail))


def reports_success_only(mail: Inbound) -> bool:
    """A DSN whose every recipient was delivered, relayed or expanded
    (RFC 3464 2.3.3): automated mail, but no failure to record."""
    parts = mail.parts_of_type(*_DSN_TYPES)
    if not parts:
        return False
    actions = {field_value(b.get("Action")).lower()
               for b in _blocks(parts[0]) if b.get("Final-Recipient")}
    return bool(actions) and actions <= _SUCCESS


@register(RULES, "x-failed-recipients", "X-Failed-Recipients header", BOUNCE)
def x_failed_recipients(mail: Inbound) -> bool:
    # Exim and Google add it to every failure report they send.
    return bool(mail.header("X-Failed-Recipients"))


# -- reading the fields ----------------------------------------------------

def field_value(value: object) -> str:
    """``rfc822; a@b`` → ``a@b``: drop the type (RFC 3464 2.1.2)."""
    text = " ".join(str(value or "").split())
    kind, semi, rest = text.partition(";")
    if semi and re.fullmatch(r"[\w.-]+", kind.strip()):
        return rest.strip()
    return text


def status_in(text: str, *, failures_only: bool = False) -> str | None:
    """The first RFC 3463 status code in ``text``, else one made from a
    bare SMTP reply code (550 → 5.0.0).  ``failures_only`` skips the
    2xx codes a session transcript is full of."""
    classes = "45" if failures_only else "245"
    for pattern in (STATUS, _SMTP_CODE):
        for found in pattern.finditer(text or ""):
            if found.group(1) not in classes:
                continue
            if pattern is STATUS:
                return ".".join(found.groups())
            return f"{found.group(1)}.0.0"
    return None


def is_permanent(status: str | None, action: str) -> bool:
    # RFC 3463 3.1: class 5 is permanent, 4 persistent transient.
    if status:
        return status.startswith("5")
    return action == "failed"


def _blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        return payload
    text = part_text(part) if not isinstance(payload, list) else ""
    parser = HeaderParser(policy=policy.default)
    chunks = re.split(r"\r?\n\s*\r?\n", text.strip())
    return [parser.parsestr(chunk.strip() + "\n") for chunk in chunks
            if chunk.strip()]


def _failed_block(blocks: list[Message]) -> Message | None:
    recipients = [b for b in blocks
                  if b.get("Final-Recipient") or b.get("Original-Recipient")]
    for block in recipients:
        if str(block.get("Action", "")).strip().lower() == "failed":
            return block
    for block in recipients:
        if str(block.get("Status", "")).strip().startswith("5"):
            return block
    return recipients[0] if recipients else None


def returned_headers(mail: Inbound) -> Message | None:
    """The headers of our returned mail, from the report's last part."""
    for part in mail.attached_parts:
        payload = part.get_payload()
        if isinstance(payload, list) and payload:
            return payload[0]
        text = part_text(part)
        if text.strip():
            return HeaderParser(policy=policy.default).parsestr(
                text.lstrip())
    return None


def original_message_id(mail: Inbound) -> str | None:
    """Our Message-ID, from the returned headers or, when a server mangled
    them (a blank line before them, a lost boundary), from a line that
    reads like that header anywhere in the returned mail or the text."""
    headers = returned_headers(mail)
    if headers is not None:
        found = _MESSAGE_ID.search(str(headers.get("Message-ID", "")))
        if found:
            return found.group(0)
    for text in (*map(_flat, mail.attached_parts), mail.text):
        line = _MESSAGE_ID_LINE.search(text)
        if line:
            return line.group(1)
    return None


def _flat(part: Message) -> str:
    try:
        return part.as_string()
    except Exception:  # a part too broken to write back out
        return ""


def read_dsn(mail: Inbound) -> BounceReport | None:
    """The report of an RFC 3464 DSN, or None when it has none."""
    parts = mail.parts_of_type(*_DSN_TYPES)
    if not parts:
        return None
    blocks = _blocks(parts[0])
    block = _failed_block(blocks)
    if block is None:
        return None
    per_message = blocks[0]
    recipients = [field_value(b.get("Original-Recipient")
                              or b.get("Final-Recipient")) for b in blocks
                  if b.get("Final-Recipient") or b.get("Original-Recipient")]
    action = field_value(block.get("Action")).lower() or "failed"
    diagnostic = field_value(block.get("Diagnostic-Code"))
    status = (status_in(field_value(block.get("Status")))
              or status_in(diagnostic))
    return BounceReport(
        recipient=field_value(block.get("Original-Recipient")
                              or block.get("Final-Recipient")) or None,
        recipients=[r for r in recipients if r],
        our_envelope=_our_envelope(mail, per_message),
        status=status,
        diagnostic=diagnostic,
        permanent=is_permanent(status, action),
        action=action,
        original_message_id=original_message_id(mail),
        reporting_mta=field_value(per_message.get("Reporting-MTA")) or None,
        source="rfc3464",
    )


def _our_envelope(mail: Inbound, per_message: Message) -> str | None:
    # Where the failed mail said bounces go: its Return-Path if the
    # headers came back, Postfix's X-Postfix-Sender, else whom the report
    # is addressed to.
    headers = returned_headers(mail)
    candidates = [
        str(headers.get("Return-Path", "")) if headers is not None else "",
        field_value(per_message.get("X-Postfix-Sender")),
        str(mail.message.get("To", "")),
    ]
    for candidate in candidates:
        found = re.search(r"[^\s<>\"',;:]+@[^\s<>\"',;]+", candidate)
        if found:
            return found.group(0).lower()
    return None
