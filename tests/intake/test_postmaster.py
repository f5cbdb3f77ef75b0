"""Mail for the postmaster of the reply domain is taken (RFC 5321 4.5.1),
kept for a person, listed by ``casemail postmaster``, and moves no case."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from intake_support import Served, Wire, address, mail, messages, open_case
from sqlalchemy import select

from casemail.cli.main import main
from casemail.db import models as m


def deliver(wire: Wire, rcpts: list[str], raw: bytes) -> list[str]:
    """The reply lines to each RCPT and to the final dot."""
    assert wire.ask("MAIL FROM:<relay-admin@mx.example>").code == 250
    lines = [wire.ask(f"RCPT TO:<{rcpt}>").lines[0] for rcpt in rcpts]
    assert wire.ask("DATA").code == 354
    wire.data(raw)
    return [*lines, *wire.reply().lines]


def test_postmaster_mail_is_kept_for_a_person_and_touches_no_case(
        serve: Callable[..., Served], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    served = serve()
    case_id = open_case(served.rt)
    raw = mail("postmaster@reply.example.test",
               message_id="<pm1@mx.example>",
               extra=f"References: <x@y>\r\nCc: {address(served.rt, case_id)}"
                     "\r\n").replace(b"Re: Licence key never arrived",
                                     b"Your server refused our mail")
    with Wire(served.smtp_port) as wire:
        wire.hello()
        lines = deliver(wire, ["PostMaster@Reply.Example.Test"], raw)
        wire.ask("RSET")
        bare = deliver(wire, ["postmaster"], raw + b"again\r\n")
    assert lines == ["250 2.1.5 Recipient ok",
                     "250 2.0.0 Message kept for the postmaster"]
    assert bare[-1] == "250 2.0.0 Message kept for the postmaster"
    assert messages(served.rt, case_id) == ["My key never came."]
    with served.rt.sessions() as s:
        rows = s.scalars(select(m.RawMail).where(
            m.RawMail.status == "postmaster").order_by(m.RawMail.id)).all()
        assert [(r.envelope_to, r.case_id) for r in rows] == [
            ("PostMaster@Reply.Example.Test", None), ("postmaster", None)]

    st = served.rt.settings
    config = tmp_path / "casemail.toml"
    config.write_text(
        f'data_dir = "{st.data_dir}"\ndatabase_url = "{st.database_url}"\n'
        f'[signing_keys]\n"1" = "{st.signing_keys["1"]}"\n')
    assert main(["--config", str(config), "postmaster", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["from"], r["subject"]) for r in listed] == [
        ("relay-admin@mx.example", "Your server refused our mail")] * 2


def test_postmaster_of_another_domain_is_still_not_relayed(
        serve: Callable[..., Served]) -> None:
    served = serve()
    with Wire(served.smtp_port) as wire:
        wire.hello()
        wire.ask("MAIL FROM:<relay-admin@mx.example>")
        answer = wire.ask("RCPT TO:<postmaster@elsewhere.example>")
    assert answer.lines == [
        "550 5.7.1 This server only takes mail for its reply domain"]
