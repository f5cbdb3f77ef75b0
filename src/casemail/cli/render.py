"""A case as the command line shows it: one JSON object, or text.

``case_dict`` is the one shape every command prints with ``--json`` (and
the shape the API is expected to offer): the case's fields, its reply
addresses and its timeline. Messages appear on the timeline where their
event is, with their new text and their attachments, kept and refused.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.addresses import Party, Signer
from casemail.db import models as m

# C0 and C1 controls but tab and line feed, and the bidirectional overrides:
# in text from mail they would move the cursor, retitle or clear the
# terminal, or reorder what a person reads (a file name shown backwards).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f"
                          "\u202a-\u202e\u2066-\u2069]")

# Events whose message is shown with them on the timeline.
_MESSAGE_EVENTS = {"message", "held", "empty", "automated",
                   "delivery_problem"}


def case_dict(s: Session, signer: Signer, case: m.Case) -> dict[str, Any]:
    """Everything about ``case`` that a person or a program asks for."""
    return {
        "id": case.id,
        "store": case.store.slug,
        "order": case.order_ref,
        "customer": {"address": case.customer_address,
                     "name": case.customer_name},
        "subject": case.subject,
        "state": case.state,
        "priority": case.priority,
        "unread": case.unread,
        "staff_joined": case.staff_joined,
        "customer_unreachable": case.customer_unreachable,
        "created_at": case.created_at.isoformat(),
        "last_activity_at": case.last_activity_at.isoformat(),
        "closed_at": case.closed_at.isoformat() if case.closed_at else None,
        "reply_addresses": {
            "customer": signer.reply_address(case.id, Party.CUSTOMER),
            "merchant": signer.reply_address(case.id, Party.MERCHANT),
        },
        "timeline": [entry_dict(e) for e in case.events],
        "mail": [mail_dict(row) for row in s.scalars(
            select(m.Outbox).where(m.Outbox.case_id == case.id)
            .order_by(m.Outbox.id))],
    }


def mail_dict(row: m.Outbox) -> dict[str, Any]:
    """One mail we sent or will send about the case, and how it fared."""
    return {
        "id": row.id, "template": row.template, "to": row.recipient,
        "party": row.party, "status": row.status, "attempts": row.attempts,
        "next_attempt_at": (row.next_attempt_at.isoformat()
                            if row.status in ("queued", "deferred") else None),
        "sent_at": row.sent_at.isoformat() if row.sent_at else None,
        "error": row.last_error, "dsn_status": row.dsn_status,
        "dsn_diagnostic": row.dsn_diagnostic,
    }


def entry_dict(event: m.Event) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": event.id,
        "at": event.at.isoformat(),
        "kind": event.kind,
        "party": event.party,
        "author": event.author_address,
        "detail": dict(event.detail or {}),
    }
    message = event.message
    if message is None or event.kind not in _MESSAGE_EVENTS:
        return entry
    entry["message"] = {
        "id": message.id,
        "kind": message.kind,
        "author_name": message.author_name,
        "subject": message.subject,
        "source": message.source,
        "held": message.held,
        "hold_reason": message.hold_reason,
    }
    entry["text"] = message.new_text
    entry["attachments_kept"] = [_file(a) for a in message.attachments
                                 if a.kept]
    entry["attachments_refused"] = [_file(a) for a in message.attachments
                                    if not a.kept]
    return entry


def _file(a: m.Attachment) -> dict[str, Any]:
    return {"filename": a.filename, "content_type": a.content_type,
            "size": a.size, "reason": a.reason}


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


# -- text ------------------------------------------------------------------


def case_line(case: m.Case) -> str:
    """One line per case, for lists."""
    unread = "*" if case.unread else " "
    return printable(f"{unread}{case.id:>6}  {case.state:<17} "
                     f"{case.priority:<7} {case.store.slug:<12} "
                     f"{case.customer_address:<30} {case.subject}")


def case_text(data: dict[str, Any]) -> str:
    """``case_dict`` output as a person reads it in a terminal."""
    lines = [
        f"Case {data['id']}: {data['subject']}",
        f"  store {data['store']}, order {data['order']}, customer "
        f"{data['customer']['address']}",
        f"  state {data['state']}, priority {data['priority']}"
        + (", unread" if data["unread"] else ""),
        f"  reply addresses: customer {data['reply_addresses']['customer']}",
        f"                   merchant {data['reply_addresses']['merchant']}",
        "  timeline:",
    ]
    for entry in data["timeline"]:
        lines += entry_lines(entry)
    if data.get("customer_unreachable"):
        lines.append("  ! mail to the customer bounced: they cannot be "
                     "reached at this address")
    lines.append("  mail:")
    lines += [mail_line(mail) for mail in data.get("mail", [])]
    return printable("\n".join(lines))


def printable(text: str) -> str:
    """``text`` fit for a terminal: controls shown as ``\\x1b``, not
    obeyed (tabs and line feeds stay)."""
    return _UNPRINTABLE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def mail_line(mail: dict[str, Any]) -> str:
    line = (f"    #{mail['id']:<5} {mail['status']:<10} {mail['template']:<18}"
            f" → {mail['to']}")
    if mail["status"] == "deferred":
        line += (f"  (attempt {mail['attempts']}, next "
                 f"{mail['next_attempt_at'][:16].replace('T', ' ')})")
    note = mail["dsn_status"] or mail["error"]
    if mail["status"] in ("deferred", "failed", "bounced", "suppressed") and note:
        line += f"  {first_line(mail['dsn_diagnostic'] or note)}"
    return line


def entry_lines(entry: dict[str, Any]) -> list[str]:
    when = entry["at"][:16].replace("T", " ")
    who = entry["author"]
    head = f"    {when}  {entry['kind']:<18} {entry['party']:<9} {who}"
    head += _detail_note(entry)
    lines = [head]
    if "text" not in entry:
        return lines
    message = entry["message"]
    if message["kind"] != "human":
        lines[0] += f"  [{message['kind']}]"
    if entry["text"].strip():
        lines.append(f"        “{first_line(entry['text'])}”")
    for a in entry["attachments_kept"]:
        lines.append(f"        + {a['filename']} ({a['content_type']})")
    for a in entry["attachments_refused"]:
        lines.append(f"        - {a['filename']} ({a['content_type']}): "
                     f"refused")
    return lines


def _detail_note(entry: dict[str, Any]) -> str:
    detail = entry["detail"]
    kind = entry["kind"]
    if kind == "state_changed":
        return f"  {detail.get('before')} → {detail.get('after')}"
    if kind == "priority_changed":
        return f"  {detail.get('before')} → {detail.get('after')}"
    if kind == "attachment_refused":
        return (f"  {detail.get('filename', '')} "
                f"({detail.get('content_type', '')})")
    if kind in ("held", "empty"):
        return f"  ({detail.get('reason', '')})"
    if kind == "delivery_problem":
        return (f"  {detail.get('recipient', '')} {detail.get('status', '')}"
                f" {'permanent' if detail.get('permanent') else 'temporary'}")
    if kind in ("auto_reply_sent", "mail_suppressed"):
        return f"  {detail.get('recipient', '')}"
    return ""


def first_line(text: str, width: int = 70) -> str:
    """The start of ``text`` on one line: enough to recognise a message."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[:width - 1] + "…"
