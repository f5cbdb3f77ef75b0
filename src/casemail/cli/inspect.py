"""``casemail inspect FILE…``: what casemail reads from a mail.

Touches no database and no settings: it reads the bytes, classifies
them and prints. ``--json`` prints one object per line and file, with
fields scripts may rely on (see ``inspect_mail``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import mailparser

from casemail.classify import classify
from casemail.mime.model import AttachmentPart
from casemail.mime.reader import read_mail


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="show what casemail reads from mail")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="raw mail (.eml); '-' reads standard input")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per file")
    p.add_argument("--envelope-from", default=None,
                   help="the SMTP MAIL FROM to classify with")
    p.set_defaults(func=run)


def inspect_mail(raw: bytes, *, envelope_from: str | None = None) -> dict:
    """Everything ``inspect`` shows about one mail, as plain data.

    Stable fields: kind, rules, subject, new_text, removed_text,
    attachments (filename, content_type as sniffed, declared_type, size,
    sha256, kept, reason), defects.
    """
    mail = read_mail(raw)
    verdict = classify(mail, envelope_from=envelope_from)
    return {
        "message_id": mail.message_id,
        "kind": verdict.kind,
        "rules": list(verdict.rules),
        "from": _box(mail.sender),
        "reply_to": [_box(b) for b in mail.reply_to],
        "to": [_box(b) for b in mail.to],
        "cc": [_box(b) for b in mail.cc],
        "date": mail.date.isoformat() if mail.date else None,
        "subject": mail.subject,
        "in_reply_to": mail.in_reply_to,
        "references": mail.references,
        "new_text": mail.new_text,
        "removed_text": mail.removed_text,
        "attachments": [_attachment(a) for a in mail.attachments],
        "forwarded": [f.message_id for f in mail.forwarded],
        "defects": mail.defects,
        "received": received_hops(raw),
    }


def received_hops(raw: bytes) -> list[dict]:
    """The ``Received:`` trail (RFC 5321 4.4), oldest hop first, with the
    delay at each hop: where a late reply spent its time.

    mail-parser reads these headers well; it parses the mail a second
    time, which is fine here and why it stays off the intake's hot path.
    """
    try:
        hops = mailparser.parse_from_bytes(raw).received or []
    except Exception:  # an unreadable trail is no reason to fail inspect
        return []
    keep = ("from", "by", "with", "date_utc", "delay")
    return [{k: hop[k] for k in keep if k in hop} for hop in hops]


def _box(box: object) -> dict | None:
    if box is None:
        return None
    return {"name": box.name, "address": box.address}  # type: ignore[attr-defined]


def _attachment(item: AttachmentPart) -> dict:
    return {
        "filename": item.filename, "safe_name": item.safe_name,
        "content_type": item.content_type,
        "declared_type": item.declared_type, "size": item.size,
        "sha256": item.sha256, "kept": item.kept, "reason": item.reason,
        "inline": item.inline, "content_id": item.content_id,
        "details": item.details,
    }


def run(args: argparse.Namespace) -> int:
    status = 0
    for name in args.files:
        try:
            raw = sys.stdin.buffer.read() if name == "-" \
                else Path(name).read_bytes()
        except OSError as exc:
            print(f"casemail inspect: {name}: {exc.strerror}",
                  file=sys.stderr)
            status = 1
            continue
        shown = inspect_mail(raw, envelope_from=args.envelope_from)
        if args.json:
            print(json.dumps({"file": name, **shown}, ensure_ascii=False))
        else:
            print(render(name, shown))
    return status


def render(name: str, shown: dict) -> str:
    """The human form: headings, then the text, then files and defects."""
    lines = [f"== {name}",
             f"kind:       {shown['kind']}  (rules: "
             f"{', '.join(shown['rules']) or 'none'})",
             f"message-id: {shown['message_id']}",
             f"from:       {_show_box(shown['from'])}",
             f"to:         {', '.join(_show_box(b) for b in shown['to'])}"]
    if shown["cc"]:
        lines.append(f"cc:         "
                     f"{', '.join(_show_box(b) for b in shown['cc'])}")
    if shown["reply_to"]:
        lines.append(f"reply-to:   "
                     f"{', '.join(_show_box(b) for b in shown['reply_to'])}")
    lines += [f"date:       {shown['date'] or '-'}",
              f"subject:    {shown['subject']}", "",
              "-- new text", shown["new_text"] or "(none)", ""]
    if shown["removed_text"]:
        lines += ["-- removed text", shown["removed_text"], ""]
    lines += _show_files(shown["attachments"])
    lines.append("-- defects: " + ("; ".join(shown["defects"]) or "none"))
    return "\n".join(lines) + "\n"


def _show_box(box: dict | None) -> str:
    if not box:
        return "-"
    return f"{box['name']} <{box['address']}>" if box["name"] \
        else box["address"]


def _show_files(items: list[dict]) -> list[str]:
    if not items:
        return []
    lines = ["-- attachments"]
    for item in items:
        verdict = "kept" if item["kept"] else "REFUSED"
        lines.append(f"  {verdict:7} {item['filename'] or '(no name)'}  "
                     f"{item['content_type']} (declared "
                     f"{item['declared_type'] or '-'}), {item['size']} bytes")
        if item["reason"]:
            lines.append(f"          {item['reason']}")
    return lines + [""]
