"""``casemail quarantine`` and ``casemail reprocess``: mail that was
accepted but could not be applied.

Such mail was answered ``250``, so it is ours to keep: it waits in the
quarantine with its error. The gateway retries it by itself up to
``max_processing_attempts``; past that a person looks (``quarantine
show``), fixes the cause, and applies it again (``reprocess``).
"""

from __future__ import annotations

import argparse
from email import policy
from email.parser import BytesHeaderParser

from casemail.cli.render import printable, to_json
from casemail.cli.settings import open_runtime
from casemail.db import models as m
from casemail.errors import CasemailError
from casemail.intake import rawstore
from casemail.intake.masking import mask_address


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quarantine", help="mail kept but not applied")
    cmds = p.add_subparsers(dest="quarantine_command", metavar="ACTION",
                            required=True)
    ls = cmds.add_parser("list", help="list the quarantined mail")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=run_list)
    show = cmds.add_parser("show", help="one quarantined mail, its error "
                           "and its headers")
    show.add_argument("id", type=int, metavar="ID")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=run_show)

    re = sub.add_parser("reprocess", help="apply quarantined mail again",
                        description="Apply quarantined mail again, once "
                        "the fault is fixed (past the retry limit too).")
    re.add_argument("ids", type=int, nargs="*", metavar="ID")
    re.add_argument("--all", action="store_true",
                    help="every quarantined mail")
    re.set_defaults(func=run_reprocess)

    pm = sub.add_parser("postmaster", help="mail for the postmaster",
                        description="Mail sent to postmaster@ the reply "
                        "domain, kept for a person and filed in no case; "
                        "'quarantine show ID' shows one.")
    pm.add_argument("--json", action="store_true")
    pm.set_defaults(func=run_postmaster)


def _summary(row: m.RawMail, limit: int) -> dict[str, object]:
    return {
        "id": row.id, "received_at": row.received_at.isoformat(),
        "from": row.envelope_from, "to": mask_address(row.envelope_to),
        "size": row.size, "attempts": row.attempts,
        "retrying": rawstore.may_retry(row, limit),
        "error": row.error.splitlines()[-1] if row.error else ""}


def run_list(args: argparse.Namespace) -> int:
    with open_runtime(args) as rt, rt.sessions() as s:
        limit = rt.settings.max_processing_attempts
        rows = [_summary(r, limit) for r in rawstore.quarantined(s)]
    if args.json:
        print(to_json(rows))
        return 0
    if not rows:
        print("The quarantine is empty.")
        return 0
    for row in rows:
        wait = "retrying" if row["retrying"] else "needs a person"
        print(f"{row['id']:>6}  {row['received_at'][:19]}  "
              f"{row['attempts']}/{limit} {wait:<14}  {row['to']}")
        print(f"        {row['error']}")
    return 0


def run_postmaster(args: argparse.Namespace) -> int:
    with open_runtime(args) as rt, rt.sessions() as s:
        rows = [{"id": r.id, "received_at": r.received_at.isoformat(),
                 "from": r.envelope_from, "subject": _subject(
                     rawstore.data_of(r, rt.settings.files_dir))}
                for r in rawstore.for_the_postmaster(s)]
    if args.json:
        print(to_json(rows))
        return 0
    if not rows:
        print("No mail for the postmaster.")
    for row in rows:
        print(f"{row['id']:>6}  {row['received_at'][:19]}  "
              f"{row['from'] or '<>'}  {row['subject']}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    with open_runtime(args) as rt, rt.sessions() as s:
        row = s.get(m.RawMail, args.id)
        if row is None:
            raise CasemailError(f"no raw mail {args.id}")
        data = _summary(row, rt.settings.max_processing_attempts)
        data |= {"status": row.status, "error": row.error,
                 "headers": _headers(
                     rawstore.data_of(row, rt.settings.files_dir))}
    if args.json:
        print(to_json(data))
        return 0
    for key in ("id", "status", "received_at", "from", "to", "size",
                "attempts"):
        print(f"{key}: {data[key]}")
    print(f"\n{data['headers']}\n\n{data['error']}")
    return 0


def run_reprocess(args: argparse.Namespace) -> int:
    from casemail.intake.pipeline import Pipeline

    if not args.ids and not args.all:
        raise CasemailError("name the mail to reprocess, or --all")
    with open_runtime(args) as rt:
        ids = list(args.ids)
        if args.all:
            with rt.sessions() as s:
                ids += [r.id for r in rawstore.quarantined(s)]
        if not ids:
            print("The quarantine holds nothing to reprocess.")
            return 0
        pipeline = Pipeline(rt)
        outcomes = [(i, pipeline.reprocess(i)) for i in ids]
    for raw_id, outcome in outcomes:
        print(f"{raw_id}: {outcome.status} ({outcome.reply})")
    stuck = sum(o.status in ("quarantined", "failed") for _, o in outcomes)
    return 1 if stuck else 0


def _headers(data: bytes) -> str:
    # The header section only: the body is the customer's, not the log's.
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    return head.decode("utf-8", "replace").replace("\r\n", "\n")


def _subject(data: bytes) -> str:
    parser = BytesHeaderParser(policy=policy.default)
    try:
        subject = str(parser.parsebytes(data).get("subject", ""))
    except Exception:  # noqa: BLE001 - a mangled header is shown as none
        subject = ""
    return printable(" ".join(subject.split()))[:80]
