"""``casemail store``: the merchants' stores, their teams and settings.

A store names who may answer as the merchant (its team: mail from any
other address to the merchant's reply address is held, not filed), its
auto-reply, and its auto-close timing: a case that waits on the customer
closes after the idle period, with a warning to the customer the lead
time before. Stores are configuration, not cases, so they are written
here directly; cases change only through the case service.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.addresses import is_mail_address
from casemail.cli.render import to_json
from casemail.cli.settings import open_runtime
from casemail.clock import Clock
from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.errors import CasemailError, UnknownCase

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class StoreError(CasemailError):
    pass


def parse_duration(text: str) -> int:
    """Seconds in ``14d``, ``36h``, ``2w``, ``90m`` or ``30s``; a bare
    number means days."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text.lower())
    if match is None:
        raise StoreError(f"{text!r} is not a duration like 14d, 36h or 2w")
    return int(match.group(1)) * _UNITS[match.group(2) or "d"]


def show_duration(seconds: int) -> str:
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def parse_switch(text: str) -> bool:
    value = text.strip().lower()
    if value in ("on", "yes", "true", "1"):
        return True
    if value in ("off", "no", "false", "0"):
        return False
    raise StoreError(f"{text!r}: say on or off")


# -- the changes -----------------------------------------------------------


def find_store(s: Session, slug: str) -> m.Store:
    store = s.scalars(select(m.Store).where(m.Store.slug == slug)).first()
    if store is None:
        raise UnknownCase(f"no store {slug!r}")
    return store


def add_store(s: Session, clock: Clock, *, slug: str, name: str,
              sender: str, members: list[str] | None = None,
              auto_reply: str = "") -> m.Store:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", slug):
        raise StoreError(f"store slug {slug!r}: use a-z, 0-9 and '-'")
    if s.scalars(select(m.Store).where(m.Store.slug == slug)).first():
        raise StoreError(f"store {slug!r} exists already")
    store = m.Store(slug=slug, name=name or slug,
                    sender_address=check_address(sender, "--sender"),
                    auto_reply_enabled=bool(auto_reply.strip()),
                    auto_reply_text=auto_reply, auto_close_enabled=True,
                    idle_seconds=14 * 86400, warning_lead_seconds=3 * 86400,
                    created_at=clock.now())
    s.add(store)
    for address in members or []:
        add_member(store, address)
    s.flush()
    return store


def add_member(store: m.Store, address: str, name: str = "") -> None:
    # Compared in lower case everywhere (the case service does too).
    address = address.strip().lower()
    if "@" not in address:
        raise StoreError(f"{address!r} is not a mail address")
    if any(t.address == address for t in store.members):
        return
    store.members.append(m.TeamMember(address=address, name=name))


def check_address(text: str, what: str) -> str:
    """A bare address (local@domain), as notifications are sent from and
    to it; a display name or a stray bracket would break every header."""
    address = text.strip()
    if not is_mail_address(address):
        raise StoreError(f"{what} {text!r} is not a mail address "
                         "(like support@shop.example)")
    return address


def remove_member(store: m.Store, address: str) -> None:
    address = address.strip().lower()
    member = next((t for t in store.members if t.address == address), None)
    if member is None:
        raise StoreError(f"{address} is not on the team of {store.slug}")
    store.members.remove(member)


def apply_settings(store: m.Store, args: argparse.Namespace) -> None:
    """The ``store set`` options that were given; the others stay."""
    if args.name is not None:
        store.name = args.name
    if args.sender is not None:
        store.sender_address = check_address(args.sender, "--sender")
    if args.idle is not None:
        store.idle_seconds = parse_duration(args.idle)
    if args.warn_lead is not None:
        store.warning_lead_seconds = parse_duration(args.warn_lead)
    if args.auto_close is not None:
        store.auto_close_enabled = parse_switch(args.auto_close)
    if args.auto_reply is not None:
        off = args.auto_reply.strip().lower() in ("off", "")
        store.auto_reply_enabled = not off
        if not off:
            store.auto_reply_text = args.auto_reply
    if store.warning_lead_seconds >= store.idle_seconds:
        raise StoreError("the warning lead time must be shorter than the "
                         "idle period")


def store_dict(store: m.Store) -> dict[str, Any]:
    return {
        "slug": store.slug,
        "name": store.name,
        "sender": store.sender_address,
        "members": [t.address for t in store.members],
        "auto_reply": (store.auto_reply_text if store.auto_reply_enabled
                       else None),
        "auto_close": store.auto_close_enabled,
        "idle": show_duration(store.idle_seconds),
        "warn_lead": show_duration(store.warning_lead_seconds),
    }


def store_text(data: dict[str, Any]) -> str:
    team = ", ".join(data["members"]) or "(none: mail goes to the sender)"
    lines = [f"{data['slug']}: {data['name']} <{data['sender']}>",
             f"  team: {team}",
             f"  auto-close: {'on' if data['auto_close'] else 'off'}, idle "
             f"{data['idle']}, warning {data['warn_lead']} before",
             f"  auto-reply: {data['auto_reply'] or 'off'}"]
    return "\n".join(lines)


# -- the commands ----------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("store", help="stores, their teams and settings")
    cmds = p.add_subparsers(dest="store_command", metavar="ACTION",
                            required=True)

    add = cmds.add_parser("add", help="add a store")
    add.add_argument("slug")
    add.add_argument("--name", default="")
    add.add_argument("--sender", required=True,
                     help="the store's own support address")
    add.add_argument("--member", action="append", default=[],
                     metavar="ADDRESS", help="a team member (repeatable)")
    add.add_argument("--auto-reply", default="", metavar="TEXT",
                     help="text sent to the customer when a case opens")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=run_add)

    set_ = cmds.add_parser("set", help="change a store's settings")
    set_.add_argument("slug")
    set_.add_argument("--name")
    set_.add_argument("--sender")
    set_.add_argument("--idle", help="idle period before auto-close (14d)")
    set_.add_argument("--warn-lead", help="warning lead time (3d)")
    set_.add_argument("--auto-close", metavar="on|off")
    set_.add_argument("--auto-reply", metavar="TEXT|off")
    set_.add_argument("--json", action="store_true")
    set_.set_defaults(func=run_set)

    member = cmds.add_parser("member", help="add or remove a team member")
    member.add_argument("action", choices=["add", "remove"])
    member.add_argument("slug")
    member.add_argument("address")
    member.add_argument("--name", default="")
    member.set_defaults(func=run_member)

    list_ = cmds.add_parser("list", help="list the stores")
    list_.add_argument("--json", action="store_true")
    list_.set_defaults(func=run_list)

    show = cmds.add_parser("show", help="show one store")
    show.add_argument("slug")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=run_show)


def _print(data: dict[str, Any], as_json: bool) -> None:
    print(to_json(data) if as_json else store_text(data))


def run_add(args: argparse.Namespace) -> int:
    with open_runtime(args) as rt, transaction(rt.sessions) as s:
        store = add_store(s, rt.clock, slug=args.slug, name=args.name,
                          sender=args.sender, members=args.member,
                          auto_reply=args.auto_reply)
        data = store_dict(store)
    _print(data, args.json)
    return 0


def run_set(args: argparse.Namespace) -> int:
    with open_runtime(args) as rt, transaction(rt.sessions) as s:
        store = find_store(s, args.slug)
        apply_settings(store, args)
        data = store_dict(store)
    _print(data, args.json)
    return 0


def run_member(args: argparse.Namespace) -> int:
    with open_runtime(args) as rt, transaction(rt.sessions) as s:
        store = find_store(s, args.slug)
        if args.action == "add":
            add_member(store, args.address, args.name)
        else:
            remove_member(store, args.address)
        data = store_dict(store)
    _print(data, False)
    return 0


def run_list(args: argparse.Namespace) -> int:
    with open_runtime(args) as rt, rt.sessions() as s:
        stores = [store_dict(st) for st in
                  s.scalars(select(m.Store).order_by(m.Store.slug))]
    if args.json:
        print(to_json(stores))
        return 0
    for data in stores:
        print(store_text(data))
    if not stores:
        print("no stores yet: casemail store add SLUG --sender ADDRESS")
    return 0


def run_show(args: argparse.Namespace) -> int:
    with open_runtime(args) as rt, rt.sessions() as s:
        data = store_dict(find_store(s, args.slug))
    _print(data, args.json)
    return 0
