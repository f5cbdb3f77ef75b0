"""``casemail store`` and ``casemail case``, run as a person runs them.

Each test calls the real command-line entry point with a settings file
pointing at a real database (SQLite and PostgreSQL) and reads what it
prints, JSON where the command offers it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from casemail.cli.main import main
from casemail.config import load_settings
from casemail.db import models as m
from casemail.db.engine import make_engine, make_sessions

Run = Callable[..., tuple[int, str, str]]
CUSTOMER = "Lena Fischer <lena.fischer@gmail.example>"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01"
       b"\x08\x02\x00\x00\x00\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xff"
       b"\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`"
       b"\x82")


@pytest.fixture
def run(config: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["--config", str(config), *argv])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def run_json(run: Run, *argv: str) -> Any:
    code, out, err = run(*argv, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def store(run: Run) -> None:
    code, _, err = run("store", "add", "northwind", "--name", "Northwind Keys",
                       "--sender", "support@northwind-keys.example",
                       "--member", "Ana.Kovac@northwind-keys.example",
                       "--member", "ben.osei@northwind-keys.example")
    assert code == 0, err


def open_case(run: Run, *extra: str) -> dict[str, Any]:
    return run_json(run, "case", "open", "--store", "northwind", "--order",
                    "NW-10421", "--customer", CUSTOMER, "--subject",
                    "Licence key never arrived", "--text",
                    "The key never came.", *extra)


def outbox(config: Path) -> list[tuple[str, str]]:
    engine = make_engine(load_settings(config).db_url)
    try:
        with make_sessions(engine)() as s:
            return [(r.template, r.recipient) for r in
                    s.scalars(select(m.Outbox).order_by(m.Outbox.id))]
    finally:
        engine.dispose()


def test_store_settings_round_trip(run: Run, store: None) -> None:
    """store set changes only what is given; show and list agree."""
    data = run_json(run, "store", "set", "northwind", "--idle", "10d",
                    "--warn-lead", "36h", "--auto-close", "off",
                    "--auto-reply", "We answer within a day.")
    assert data["idle"] == "10d" and data["warn_lead"] == "36h"
    assert data["auto_close"] is False
    assert data["auto_reply"] == "We answer within a day."
    assert data["members"] == ["ana.kovac@northwind-keys.example",
                               "ben.osei@northwind-keys.example"]
    assert run_json(run, "store", "show", "northwind") == data
    assert run_json(run, "store", "list") == [data]

    assert run_json(run, "store", "set", "northwind", "--auto-reply",
                    "off")["auto_reply"] is None


def test_store_members_are_added_and_removed(run: Run, store: None) -> None:
    assert run("store", "member", "add", "northwind",
               "cara@northwind-keys.example")[0] == 0
    assert run("store", "member", "remove", "northwind",
               "ana.kovac@northwind-keys.example")[0] == 0
    assert run_json(run, "store", "show", "northwind")["members"] == [
        "ben.osei@northwind-keys.example", "cara@northwind-keys.example"]


@pytest.mark.parametrize("argv, words", [
    (("store", "set", "northwind", "--idle", "soon"), "not a duration"),
    (("store", "set", "northwind", "--idle", "2d", "--warn-lead", "3d"),
     "shorter than the idle period"),
    (("store", "add", "northwind", "--sender", "x@y.example"),
     "exists already"),
    (("case", "show", "99"), "no case 99"),
    (("case", "open", "--store", "nowhere", "--order", "1", "--customer",
      CUSTOMER, "--subject", "s", "--text", "t"), "no store"),
])
def test_mistakes_are_reported_not_raised(run: Run, store: None,
                                          argv: tuple[str, ...],
                                          words: str) -> None:
    code, _, err = run(*argv)
    assert code == 1
    assert words in err


def test_case_open_prints_the_case_as_one_object(run: Run, store: None,
                                                 config: Path) -> None:
    """--json: id, state, priority, unread, both reply addresses and a
    timeline whose message entry has its text and attachments."""
    case = open_case(run, "--priority", "high")
    assert case["state"] == "awaiting_merchant"
    assert case["priority"] == "high" and case["unread"] is True
    assert set(case["reply_addresses"]) == {"customer", "merchant"}
    assert all(a.startswith("case+") and a.endswith("@reply.example.test")
               for a in case["reply_addresses"].values())
    kinds = [e["kind"] for e in case["timeline"]]
    assert kinds[:2] == ["opened", "message"]
    message = case["timeline"][1]
    assert message["party"] == "customer"
    assert message["author"] == "lena.fischer@gmail.example"
    assert message["text"] == "The key never came."
    assert message["attachments_kept"] == []
    assert message["attachments_refused"] == []
    # Both team members were told.
    assert [t for t, _ in outbox(config)] == ["new_case", "new_case"]


def test_a_merchant_reply_moves_the_case_and_mails_the_customer(
        run: Run, store: None, config: Path, tmp_path: Path) -> None:
    case = open_case(run)
    (tmp_path / "steps.png").write_bytes(PNG)
    (tmp_path / "tool.pdf").write_bytes(b"MZ" + b"\0" * 200)
    data = run_json(run, "case", "reply", str(case["id"]), "--as", "merchant",
                    "--from", "ana.kovac@northwind-keys.example", "--text",
                    "Here is your key: NWK-7Q4M.", "--attach",
                    str(tmp_path / "steps.png"), "--attach",
                    str(tmp_path / "tool.pdf"))
    assert data["state"] == "awaiting_customer"
    reply = [e for e in data["timeline"] if e["kind"] == "message"][-1]
    assert reply["party"] == "merchant"
    assert reply["text"] == "Here is your key: NWK-7Q4M."
    assert [a["filename"] for a in reply["attachments_kept"]] == ["steps.png"]
    assert [a["filename"] for a in reply["attachments_refused"]] == [
        "tool.pdf"]
    assert ("merchant_reply", "lena.fischer@gmail.example") in outbox(config)


def test_close_and_reopen_by_either_party(run: Run, store: None) -> None:
    case_id = str(open_case(run)["id"])
    closed = run_json(run, "case", "status", case_id, "closed", "--as",
                      "customer")
    assert closed["state"] == "closed"
    assert "closed" in [e["kind"] for e in closed["timeline"]]
    again = run_json(run, "case", "status", case_id, "open")
    assert again["state"] == "open"
    assert again["timeline"][-1]["kind"] == "reopened"

    code, _, err = run("case", "status", case_id, "open", "--as", "customer")
    assert code == 1 and "cannot" in err


def test_priority_and_read_and_list_filters(run: Run, store: None) -> None:
    first = open_case(run)["id"]
    second = open_case(run)["id"]
    data = run_json(run, "case", "priority", str(first), "urgent")
    assert data["priority"] == "urgent"
    assert data["timeline"][-1]["detail"] == {"before": "normal",
                                              "after": "urgent"}
    assert run_json(run, "case", "read", str(second))["unread"] is False

    listed = run_json(run, "case", "list")
    assert [c["id"] for c in listed] == [second, first]
    assert all({"id", "state", "priority", "unread", "reply_addresses",
                "timeline"} <= set(c) for c in listed)
    assert [c["id"] for c in run_json(run, "case", "list", "--unread")] == [
        first]
    assert [c["id"] for c in run_json(run, "case", "list", "--priority",
                                      "urgent")] == [first]
    assert run_json(run, "case", "list", "--state", "closed") == []


def test_case_show_in_text_shows_the_timeline(run: Run, store: None) -> None:
    case_id = open_case(run)["id"]
    code, out, _ = run("case", "show", str(case_id))
    assert code == 0
    assert "state awaiting_merchant" in out
    assert "“The key never came.”" in out
    assert "reply addresses: customer case+" in out


def test_case_show_lists_each_mail_and_how_it_fared(
        run: Run, store: None, config: Path) -> None:
    case_id = open_case(run)["id"]
    engine = make_engine(load_settings(config).db_url)
    try:  # the relay refused the second notice for now
        with make_sessions(engine).begin() as s:
            row = s.scalars(select(m.Outbox).order_by(m.Outbox.id)).all()[1]
            row.status, row.attempts = "deferred", 2
            row.last_error = "451 4.3.0 relay busy"
    finally:
        engine.dispose()
    mail = run_json(run, "case", "show", str(case_id))["mail"]
    assert [(x["template"], x["status"]) for x in mail] == [
        ("new_case", "queued"), ("new_case", "deferred")]
    assert mail[1]["attempts"] == 2 and mail[1]["next_attempt_at"]
    code, out, _ = run("case", "show", str(case_id))
    assert "deferred   new_case" in out and "451 4.3.0 relay busy" in out
