"""``casemail case``: the operations the API offers, from a terminal.

open, list, show, reply, status, priority, read — each one transaction
through the case service, exactly as the API and the mail pipeline go, so
a reply typed here sends the same notifications as one sent by mail.
"""

from __future__ import annotations

import argparse
from email.utils import getaddresses
from pathlib import Path

from sqlalchemy import select

from casemail.addresses import MAX_ID, Party, is_mail_address
from casemail.cases.content import Content
from casemail.cases.states import Priority, State
from casemail.cli.render import case_dict, case_line, case_text, to_json
from casemail.cli.settings import open_runtime
from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.errors import CaseError, UnknownCase
from casemail.mime.attachments import Budget, judge
from casemail.mime.model import AttachmentPart

STATES = [s.value for s in State]
# A larger number names no case (``addresses.MAX_ID``).
MAX_CASE_ID = MAX_ID
PRIORITIES = [p.value for p in Priority]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("case", help="open, list, show and work cases")
    cmds = p.add_subparsers(dest="case_command", metavar="ACTION",
                            required=True)

    op = cmds.add_parser("open", help="open a case for a customer")
    op.add_argument("--store", required=True, metavar="SLUG")
    op.add_argument("--order", required=True, metavar="REF")
    op.add_argument("--customer", required=True,
                    metavar='"NAME <ADDRESS>"')
    op.add_argument("--subject", required=True)
    op.add_argument("--text", required=True, help="what the customer wrote")
    op.add_argument("--priority", choices=PRIORITIES, default="normal")
    op.add_argument("--attach", action="append", default=[], metavar="FILE")
    op.add_argument("--json", action="store_true")
    op.set_defaults(func=run_open)

    ls = cmds.add_parser("list", help="list cases, newest first")
    ls.add_argument("--store", metavar="SLUG")
    ls.add_argument("--state", choices=STATES)
    ls.add_argument("--priority", choices=PRIORITIES)
    ls.add_argument("--unread", action="store_true",
                    help="only cases with something new for the merchant")
    ls.add_argument("--limit", type=int, default=100)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=run_list)

    show = cmds.add_parser("show", help="a case with its timeline")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=run_show)

    rep = cmds.add_parser("reply", help="write to a case as one party")
    rep.add_argument("id", type=int)
    _as_party(rep, with_staff=True)
    rep.add_argument("--text", required=True)
    rep.add_argument("--from", dest="author", metavar="ADDRESS",
                     help="author address (default: the party's own)")
    rep.add_argument("--attach", action="append", default=[], metavar="FILE")
    rep.add_argument("--json", action="store_true")
    rep.set_defaults(func=run_reply)

    st = cmds.add_parser("status", help="close, reopen or move a case")
    st.add_argument("id", type=int)
    st.add_argument("state", choices=STATES)
    _as_party(st)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=run_status)

    pr = cmds.add_parser("priority", help="set a case's priority")
    pr.add_argument("id", type=int)
    pr.add_argument("priority", choices=PRIORITIES)
    _as_party(pr)
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=run_priority)

    rd = cmds.add_parser("read", help="mark a case read (for the merchant)")
    rd.add_argument("id", type=int)
    rd.add_argument("--json", action="store_true")
    rd.set_defaults(func=run_read)


def _as_party(parser: argparse.ArgumentParser, *,
              with_staff: bool = False) -> None:
    choices = ["merchant", "customer"] + (["staff"] if with_staff else [])
    parser.add_argument("--as", dest="party", choices=choices,
                        default="merchant",
                        help="who acts (default: merchant)")


# -- the commands ----------------------------------------------------------


def run_open(args: argparse.Namespace) -> int:
    _said_something(args)
    name, address = _customer(args.customer)
    with open_runtime(args) as rt, transaction(rt.sessions) as s:
        content = Content.typed(args.text, source="cli",
                                attachments=_files(rt.settings, args.attach))
        case = rt.service.open_case(
            s, store_slug=args.store, order_ref=args.order,
            customer_address=address, customer_name=name,
            subject=args.subject, content=content, priority=args.priority)
        s.flush()
        s.refresh(case)
        data = case_dict(s, rt.signer, case)
    _print(data, args.json)
    return 0


def run_list(args: argparse.Namespace) -> int:
    with open_runtime(args) as rt, rt.sessions() as s:
        query = select(m.Case).order_by(m.Case.id.desc()).limit(args.limit)
        if args.store:
            rt.service.store(s, args.store)  # an unknown slug is an error
            query = query.join(m.Store).where(m.Store.slug == args.store)
        if args.state:
            query = query.where(m.Case.state == args.state)
        if args.priority:
            query = query.where(m.Case.priority == args.priority)
        if args.unread:
            query = query.where(m.Case.unread.is_(True))
        cases = list(s.scalars(query))
        if args.json:
            print(to_json([case_dict(s, rt.signer, c) for c in cases]))
            return 0
        for case in cases:
            print(case_line(case))
    if not cases:
        print("no cases")
    return 0


def run_show(args: argparse.Namespace) -> int:
    _known_id(args.id)
    with open_runtime(args) as rt, rt.sessions() as s:
        case = s.get(m.Case, args.id)
        if case is None:
            raise CaseError(f"no case {args.id}")
        data = case_dict(s, rt.signer, case)
    _print(data, args.json)
    return 0


def run_reply(args: argparse.Namespace) -> int:
    party = Party(args.party)
    _said_something(args)

    def change(rt: object, s: object, case: m.Case) -> None:
        content = Content.typed(args.text, source="cli",
                                attachments=_files(rt.settings, args.attach))
        author = args.author or _own_address(case, party)
        rt.service.add_message(s, case, party=party, author_address=author,
                               content=content)
    return _change(args, change)


def run_status(args: argparse.Namespace) -> int:
    party = Party(args.party)
    return _change(args, lambda rt, s, case: rt.service.set_status(
        s, case, party=party, state=args.state,
        actor_address=_own_address(case, party)))


def run_priority(args: argparse.Namespace) -> int:
    party = Party(args.party)
    return _change(args, lambda rt, s, case: rt.service.set_priority(
        s, case, args.priority, party=party,
        actor_address=_own_address(case, party)))


def run_read(args: argparse.Namespace) -> int:
    return _change(args, lambda rt, s, case: rt.service.mark_read(
        s, case, actor_address=_own_address(case, Party.MERCHANT)))


# -- helpers ---------------------------------------------------------------


def _change(args: argparse.Namespace, change: object) -> int:
    """Lock the case, apply ``change`` through the service, commit, print."""
    _known_id(args.id)
    with open_runtime(args) as rt:
        with transaction(rt.sessions) as s:
            case = rt.service.lock_case(s, args.id)
            change(rt, s, case)  # type: ignore[operator]
        with rt.sessions() as s:
            data = case_dict(s, rt.signer, s.get(m.Case, args.id))
    _print(data, args.json)
    return 0


def _known_id(case_id: int) -> None:
    if not 0 < case_id <= MAX_CASE_ID:
        raise UnknownCase(f"no case {case_id}")


def _said_something(args: argparse.Namespace) -> None:
    # The case service refuses a message with nothing in it too; this
    # says so in the terms of the options, before a database is opened.
    if not args.text.strip() and not args.attach:
        raise CaseError("--text is empty: write the message, or --attach "
                        "a file")


def _customer(text: str) -> tuple[str, str]:
    """Name and address of "NAME <ADDRESS>" or of a bare address. What
    does not read as one address goes on as typed, and the case service
    says what is wrong with it."""
    found = getaddresses([text])
    if len(found) == 1 and is_mail_address(found[0][1]):
        return found[0]
    return "", text


def _own_address(case: m.Case, party: Party) -> str:
    if party is Party.CUSTOMER:
        return case.customer_address
    if party is Party.MERCHANT:
        return case.store.sender_address
    return ""


def _files(settings: object, paths: list[str]) -> list[AttachmentPart]:
    """Files given on the command line, judged like mail attachments."""
    budget = Budget(settings.max_attachment_size,  # type: ignore[attr-defined]
                    settings.max_attachments_total)  # type: ignore[attr-defined]
    parts = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise CaseError(f"{path}: no such file")
        parts.append(judge(path.read_bytes(), filename=path.name,
                           declared="", budget=budget))
    return parts


def _print(data: dict[str, object], as_json: bool) -> None:
    print(to_json(data) if as_json else case_text(data))
