"""``casemail demo``: the whole path of the mail, once, on throw-away data.

It starts casemail on SQLite under ``./var/demo`` (emptied first) with a
local SMTP server standing in for the outbound relay, which keeps what it
receives in a maildir a person can open. It creates the stores and cases
that ``fixtures/expected.toml`` describes, sends every fixture mail
through the real SMTP listener, checks each answer and each case against
what the file expects, waits until the outbox is empty, and prints every
case with its timeline and every mail that went out.

The scenario helpers here (``load_scenario``, ``set_up``, ``observe``,
``differences``) are also what the end-to-end tests use.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from casemail.addresses import Party
from casemail.cases.content import Content
from casemail.cli.render import case_dict, case_text
from casemail.cli.replay import CaseResolver, Result, Sender, send_file
from casemail.cli.stores import add_store
from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.errors import CasemailError
from casemail.intake import replies

log = logging.getLogger(__name__)

# The fixtures beside the source tree (an editable install, or a clone).
FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"

_OUTCOME_BY_REPLY = {
    replies.ACCEPTED[4:]: "filed",
    replies.HELD[4:]: "held",
    replies.EMPTY[4:]: "empty",
    replies.RECORDED[4:]: "ignored",
    replies.DUPLICATE[4:]: "duplicate",
    replies.QUARANTINED[4:]: "quarantined",
}


@dataclass
class Scenario:
    stores: dict[str, dict[str, Any]]
    cases: dict[str, dict[str, Any]]
    mails: dict[str, dict[str, Any]]
    folder: Path

    def files(self) -> list[Path]:
        """The fixture mails, in the order they are replayed."""
        return [self.folder / name for name in sorted(self.mails)]


def load_scenario(folder: Path = FIXTURES) -> Scenario:
    expected = folder / "expected.toml"
    if not expected.is_file():
        raise CasemailError(f"{expected}: no such file (run the demo from "
                            f"a clone of casemail, or give --fixtures)")
    data = tomllib.loads(expected.read_text(encoding="utf-8"))
    scenario = Scenario(data.get("stores", {}), data.get("cases", {}),
                        data.get("mails", {}), folder)
    missing = [p.name for p in scenario.files() if not p.is_file()]
    if missing:
        raise CasemailError(f"expected.toml names missing mails: {missing}")
    return scenario


def set_up(rt: Any, scenario: Scenario) -> dict[str, int]:
    """Create the scenario's stores and cases; the case id of each label."""
    labels: dict[str, int] = {}
    with transaction(rt.sessions) as s:
        for slug, store in scenario.stores.items():
            add_store(s, rt.clock, slug=slug, name=store.get("name", slug),
                      sender=store["sender"],
                      members=store.get("members", []),
                      auto_reply=store.get("auto_reply", ""))
    for label, spec in scenario.cases.items():
        labels[label] = _open_case(rt, spec)
    return labels


def _open_case(rt: Any, spec: dict[str, Any]) -> int:
    name, address = parseaddr(spec["customer"])
    with transaction(rt.sessions) as s:
        case = rt.service.open_case(
            s, store_slug=spec["store"], order_ref=spec["order"],
            customer_address=address, customer_name=name,
            subject=spec["subject"],
            content=Content.typed(spec.get("text", ""), source="api"),
            priority=spec.get("priority", "normal"))
        case_id = int(case.id)
    closed_by = spec.get("closed_by")
    if closed_by:
        with transaction(rt.sessions) as s:
            case = rt.service.lock_case(s, case_id)
            rt.service.set_status(s, case, party=Party(closed_by),
                                  state="closed")
    return case_id


# -- what a mail did, and what it should have done -------------------------


def outcome_of(result: Result) -> str:
    if result.code >= 500:
        return "refused"
    if result.code >= 400:
        return "deferred"
    return _OUTCOME_BY_REPLY.get(result.reply, "accepted")


def observe(rt: Any, labels: dict[str, int], expected: dict[str, Any],
            result: Result) -> dict[str, Any]:
    """The fields of ``expected`` as they really are after ``result``."""
    seen: dict[str, Any] = {"smtp": result.code, "stage": result.stage,
                            "outcome": outcome_of(result)}
    case_id = labels.get(expected.get("case", ""))
    if case_id is None:
        return seen
    with rt.sessions() as s:
        seen["state"] = s.get(m.Case, case_id).state
        message = s.scalars(
            select(m.Message).where(m.Message.case_id == case_id,
                                    m.Message.message_id == result.message_id)
            .order_by(m.Message.id)).first()
        if message is None:
            return seen
        seen.update(kind=message.kind, party=message.party,
                    text=message.new_text,
                    kept=[a.filename for a in message.attachments if a.kept],
                    refused=[a.filename for a in message.attachments
                             if not a.kept])
    return seen


def differences(expected: dict[str, Any], seen: dict[str, Any]) -> list[str]:
    """Each way ``seen`` falls short of ``expected``, in words."""
    wrong = []
    for key in ("smtp", "outcome", "state", "kind", "party"):
        if key in expected and seen.get(key) != expected[key]:
            wrong.append(f"{key} {seen.get(key)!r}, expected {expected[key]!r}")
    if seen["stage"] != expected.get("stage", "DATA"):
        wrong.append(f"answered at {seen['stage']}, expected "
                     f"{expected.get('stage', 'DATA')}")
    text = seen.get("text", "")
    if "text" in expected and expected["text"] not in text:
        wrong.append(f"new text lacks {expected['text']!r}: {text[:200]!r}")
    if expected.get("not_text") and expected["not_text"] in text:
        wrong.append(f"new text still has {expected['not_text']!r}")
    for key in ("kept", "refused"):
        if sorted(expected.get(key, [])) != sorted(seen.get(key, [])):
            wrong.append(f"{key} {seen.get(key, [])}, expected "
                         f"{expected.get(key, [])}")
    return wrong


async def replay_checked(rt: Any, port: int, scenario: Scenario,
                         labels: dict[str, int],
                         each: Callable[[Result, list[str]], None]) -> int:
    """Send every fixture mail, check it; the number that misbehaved."""
    sender = Sender(rt.settings.listener.host, port)
    resolve = CaseResolver(rt, labels)
    failed = 0
    try:
        for path in scenario.files():
            expected = scenario.mails[path.name]
            result = await asyncio.to_thread(send_file, sender, path, None,
                                             resolve)
            seen = await asyncio.to_thread(observe, rt, labels, expected,
                                           result)
            wrong = differences(expected, seen)
            failed += bool(wrong)
            each(result, wrong)
    finally:
        await asyncio.to_thread(sender.close)
    return failed


async def outbox_drained(rt: Any, *, timeout: float = 60.0) -> bool:
    """Wait until nothing is left to send (True), or ``timeout`` passes."""
    def pending() -> int:
        with rt.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(m.Outbox)
                                .where(m.Outbox.status.in_(
                                    ("queued", "deferred")))) or 0)
    for _ in range(int(timeout / 0.2)):
        if not await asyncio.to_thread(pending):
            return True
        await asyncio.sleep(0.2)
    return False


# -- the command -----------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="run casemail end to end on throw-away data",
        description="Start casemail on SQLite with a local mail sink, "
                    "replay the fixture mails over SMTP and show the cases.")
    p.add_argument("--dir", type=Path, default=Path("var/demo"),
                   help="where the demo keeps its data (emptied first)")
    p.add_argument("--fixtures", type=Path, default=FIXTURES,
                   help="folder with the mails and expected.toml")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from casemail.outbound.sink import MaildirSink

    scenario = load_scenario(args.fixtures)
    base: Path = args.dir.resolve()
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    logging.getLogger().setLevel(logging.WARNING)  # the report is the output
    sink = MaildirSink(base / "sent-mail")
    sink.start()
    try:
        rt = _runtime(base, sink.port)
        try:
            failed = asyncio.run(_main(rt, scenario))
        finally:
            rt.close()
        sent = len(sink.maildir.keys())
    finally:
        sink.stop()
    print(f"\n{sent} mails went out; they are in {base / 'sent-mail'} "
          f"(a maildir: mutt -f {base / 'sent-mail'}, or any file viewer).")
    print(f"Database: {base / 'casemail.db'}")
    if failed:
        print(f"\n{failed} mails did not do what fixtures/expected.toml "
              f"says (marked ✗ above).")
        return 1
    return 0


def _runtime(base: Path, relay_port: int) -> Any:
    from casemail.config import load_settings
    from casemail.runtime import build_runtime

    # A key of its own for each run: the demo's addresses die with it.
    settings = load_settings(
        None, data_dir=base, database_url="",
        signing_keys={"1": secrets.token_urlsafe(32)},
        listener={"host": "127.0.0.1", "port": 0},
        relay={"host": "127.0.0.1", "port": relay_port,
               "poll_interval": 0.2, "retry_base": 1.0})
    return build_runtime(settings)


async def _main(rt: Any, scenario: Scenario) -> int:
    from casemail.gateway import Gateway

    gateway = Gateway(rt, sweep=False)
    await gateway.start()
    try:
        labels = await asyncio.to_thread(set_up, rt, scenario)
        print(f"casemail is listening on 127.0.0.1:{gateway.smtp_port}; "
              f"{len(labels)} cases opened in {len(scenario.stores)} stores.")
        print(f"Replaying {len(scenario.mails)} mails from "
              f"{scenario.folder} over SMTP:\n")
        failed = await replay_checked(rt, gateway.smtp_port, scenario,
                                      labels, _print_result)
        if not await outbox_drained(rt):
            print("\nthe outbox did not drain within a minute")
    finally:
        await gateway.stop()
    await asyncio.to_thread(_print_cases, rt, labels)
    return failed


def _print_result(result: Result, wrong: list[str]) -> None:
    mark = "✗" if wrong else "✓"
    print(f"  {mark} {result.path.name:<46} {result.code} "
          f"{outcome_of(result)}")
    for line in wrong:
        print(f"      {line}")


def _print_cases(rt: Any, labels: dict[str, int]) -> None:
    with rt.sessions() as s:
        for label, case_id in labels.items():
            print(f"\n[{label}] " + case_text(
                case_dict(s, rt.signer, s.get(m.Case, case_id))))
        rows = list(s.scalars(select(m.Outbox).order_by(m.Outbox.id)))
        print(f"\nOutbox ({len(rows)} mails):")
        for row in rows:
            print(f"  {row.id:>3} {row.status:<10} case {row.case_id or '-':>2}"
                  f"  {row.template:<19} → {row.recipient}")
