"""Every fixture mail, replayed over real SMTP, does what expected.toml says.

The cases of the scenario are created through the case service, then each
mail goes to the gateway's listener on a loopback port in file-name
order; after each one the SMTP answer, the case and the stored message
are compared with the expectations. Outbound mail then goes through the
delivery worker to a real receiving SMTP server.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest
from e2e_gateway import GatewayThread, deliver_all
from sqlalchemy import select

from casemail.cli.demo import (
    differences,
    load_scenario,
    observe,
    outcome_of,
    set_up,
)
from casemail.cli.replay import CaseResolver, Sender, send_file
from casemail.db import models as m
from casemail.outbound.sink import MaildirSink
from casemail.runtime import Runtime

SCENARIO = load_scenario()


def test_the_scenario_has_the_mails_we_promise() -> None:
    """At least 25 mails, each with an expected outcome, all kinds present."""
    mails = SCENARIO.mails
    assert len(mails) >= 25
    outcomes = {e["outcome"] for e in mails.values()}
    assert {"filed", "held", "empty", "ignored", "duplicate",
            "refused"} <= outcomes
    kinds = {e.get("kind") for e in mails.values()}
    assert {"human", "auto-reply", "bounce", "list"} <= kinds
    assert any(e.get("refused") for e in mails.values())
    assert any(e.get("kept") for e in mails.values())


def replay_scenario(rt: Runtime, port: int) -> tuple[dict[str, int],
                                                      dict[str, list[str]]]:
    labels = set_up(rt, SCENARIO)
    deliver_all(rt)  # the relay has the first notifications before replies
    sender = Sender("127.0.0.1", port)
    resolve = CaseResolver(rt, labels)
    wrong: dict[str, list[str]] = {}
    try:
        for path in SCENARIO.files():
            expected = SCENARIO.mails[path.name]
            result = send_file(sender, path, None, resolve)
            assert not result.reply.startswith("Error"), result.reply
            wrong[path.name] = differences(
                expected, observe(rt, labels, expected, result))
            # A 250 must mean stored: read it back in a session of its own.
            if outcome_of(result) in ("filed", "held", "empty", "ignored"):
                assert _stored(rt, result.message_id), path.name
            deliver_all(rt)
    finally:
        sender.close()
    return labels, wrong


def _stored(rt: Runtime, message_id: str) -> bool:
    with rt.sessions() as s:
        return s.scalars(select(m.Message.id).where(
            m.Message.message_id == message_id)).first() is not None


def test_every_fixture_does_what_is_expected(
        e2e_runtime: Runtime, gateway: GatewayThread, sink: MaildirSink,
        subtests: pytest.Subtests) -> None:
    """Each mail's SMTP answer, outcome, case state, kind, new text and
    attachments match expected.toml, on SQLite and on PostgreSQL."""
    labels, wrong = replay_scenario(e2e_runtime, gateway.port)
    assert deliver_all(e2e_runtime) == 0
    for name, problems in wrong.items():
        with subtests.test(msg=name):
            assert problems == []
    assert all(not p for p in wrong.values()), {
        k: v for k, v in wrong.items() if v}
    _check_notifications(e2e_runtime, labels, sink)


def _check_notifications(rt: Runtime, labels: dict[str, int],
                         sink: MaildirSink) -> None:
    """The mails the replayed replies caused reached the relay."""
    with rt.sessions() as s:
        rows = list(s.scalars(select(m.Outbox)))
        case6 = s.get(m.Case, labels["case6"])
        assert case6.customer_unreachable  # the bounce was understood
    assert {r.status for r in rows} <= {"sent", "bounced"}
    sent = [_parse(msg) for msg in sink.messages()]
    assert len(sent) == len(rows)  # the bounced one had been sent too

    # The merchant's answer with the key reached the customer, with the
    # case's reply address to answer to and threading headers.
    to_lena = [msg for msg in sent
               if "lena.fischer@gmail.example" in str(msg["To"])
               and "NWK-7Q4M-PL2X-9RTA" in _body(msg)]
    assert to_lena, "the merchant's reply never reached the customer"
    assert "case+" in str(to_lena[0]["Reply-To"])
    assert to_lena[0]["In-Reply-To"]

    # The customer learnt which of their files was refused.
    to_tomas = [msg for msg in sent
                if "tomas.herrera@outlook.example" in str(msg["To"])
                and "invoice.pdf" in _body(msg)]
    assert to_tomas, "no notice about the refused attachment"

    # Automated mail and held mail caused no notification at all.
    to_priya_team = [msg for msg in sent if "first thing tomorrow"
                     in _body(msg)]
    assert to_priya_team == []


def _parse(message: object) -> EmailMessage:
    return email.message_from_bytes(bytes(message),  # type: ignore[call-overload]
                                    policy=email.policy.default)


def _body(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain", "html"))
    return part.get_content() if part is not None else ""
