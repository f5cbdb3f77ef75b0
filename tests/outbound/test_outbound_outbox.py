"""queue_mail writes the outbox row in the caller's transaction, with
signed ids, threading from the case's earlier mail, and the budget and
bounce suppressions recorded instead of dropped."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from casemail.addresses import Party
from casemail.db import models as m
from casemail.outbound.outbox import UNREACHABLE, queue_mail

MakeCase = Callable[..., m.Case]


def _queue(session: Session, case: m.Case, deps: dict[str, Any], *,
           party: Party = Party.MERCHANT, template: str = "new_case",
           recipient: str | None = None, **kw: Any) -> m.Outbox:
    if recipient is None:
        recipient = (case.customer_address if party is Party.CUSTOMER
                     else "owner@pixelforge.example")
    return queue_mail(
        session, case=case, template=template, recipient=recipient,
        recipient_name="Ola Nordmann", party=party,
        reply_to=deps["signer"].reply_address(case.id, party),
        context={"case": case, "store": case.store, "message": _words()},
        **deps, **kw)


def _words() -> m.Message:
    # Not added to the session: only its fields are rendered.
    msg = m.Message(party="customer", new_text="Still no key, sorry.",
                    author_name="Zoë Mertens")
    msg.attachments = []
    return msg


def _parse(row: m.Outbox) -> email.message.EmailMessage:
    return email.message_from_bytes(row.data, policy=email.policy.default)


def test_the_row_lives_and_dies_with_the_callers_transaction(
        sessions: sessionmaker[Session], deps: dict[str, Any],
        make_case: MakeCase) -> None:
    signer, clock, settings = deps["signer"], deps["clock"], deps["settings"]
    with sessions() as s:
        case = make_case(s, clock)
        _queue(s, case, deps)
        s.rollback()
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count(m.Outbox.id))) == 0

    with sessions() as s, s.begin():
        case = make_case(s, clock)
        row = _queue(s, case, deps)
        row_id, case_id = row.id, case.id
    with sessions() as s:
        row = s.get(m.Outbox, row_id)
        assert row is not None and row.status == "queued"
        assert row.next_attempt_at == clock.now()
        assert row.deadline == clock.now() + dt.timedelta(
            seconds=settings.relay.retry_deadline)
        assert signer.read_envelope_sender(row.envelope_from) == row_id
        ref = signer.read_message_id(row.message_id)
        assert (ref.case_id, ref.party) == (case_id, Party.MERCHANT)
        assert row.subject.startswith(f"[Pixel Forge Ltd] Case #{case_id}")
        msg = _parse(row)
        assert msg["Message-ID"] == row.message_id
        assert msg["From"].addresses[0].display_name == (
            "Zoë Mertens via Shopfront Platform")
        assert msg["From"].addresses[0].addr_spec == settings.from_address


def test_threading_follows_what_the_recipient_has_seen(
        sessions: sessionmaker[Session], deps: dict[str, Any],
        make_case: MakeCase) -> None:
    clock = deps["clock"]
    with sessions() as s, s.begin():
        case = make_case(s, clock)
        first = _queue(s, case, deps)
        assert _parse(first)["In-Reply-To"] is None

        clock.advance(minutes=5)
        s.add(m.Message(case_id=case.id, party="customer",
                        message_id="<reply-1@customer.example>",
                        created_at=clock.now()))
        clock.advance(minutes=5)
        to_merchant = _parse(_queue(s, case, deps,
                                    template="customer_reply"))
        to_customer = _parse(_queue(s, case, deps, party=Party.CUSTOMER,
                                    template="merchant_reply",
                                    automated=False, auto_submitted=""))

    # The merchant saw only our first notification.
    assert to_merchant["In-Reply-To"] == first.message_id
    assert to_merchant["References"].split() == [first.message_id]
    # The customer wrote one mail: that is where the thread is for them.
    assert to_customer["In-Reply-To"] == "<reply-1@customer.example>"
    assert to_customer["References"].split() == ["<reply-1@customer.example>"]


def test_a_party_with_nothing_seen_gets_the_whole_thread(
        sessions: sessionmaker[Session], deps: dict[str, Any],
        make_case: MakeCase) -> None:
    clock = deps["clock"]
    with sessions() as s, s.begin():
        case = make_case(s, clock)
        first = _queue(s, case, deps)
        clock.advance(seconds=1)
        auto = _parse(_queue(s, case, deps, party=Party.CUSTOMER,
                             template="auto_reply",
                             auto_submitted="auto-replied"))
    assert auto["In-Reply-To"] == first.message_id
    assert auto["Auto-Submitted"] == "auto-replied"


def test_no_mail_to_a_customer_whose_address_bounced(
        sessions: sessionmaker[Session], deps: dict[str, Any],
        make_case: MakeCase) -> None:
    clock = deps["clock"]
    with sessions() as s, s.begin():
        case = make_case(s, clock)
        case.customer_unreachable = True
        human = _queue(s, case, deps, party=Party.CUSTOMER,
                       template="merchant_reply", automated=False)
        merchant = _queue(s, case, deps)
    assert (human.status, human.last_error) == ("suppressed", UNREACHABLE)
    assert human.data  # kept, so an operator can see what was stopped
    assert merchant.status == "queued"


def test_budget_per_recipient_and_case(
        sessions: sessionmaker[Session], deps: dict[str, Any],
        make_case: MakeCase) -> None:
    clock, settings = deps["clock"], deps["settings"]
    settings.budget.per_case_recipient = 2
    with sessions() as s, s.begin():
        case = make_case(s, clock)
        other = make_case(s, clock, subject="Refund question")
        statuses = [_queue(s, case, deps, template="customer_reply").status
                    for _ in range(3)]
        over = _queue(s, case, deps, recipient="OWNER@PixelForge.example")
        human = _queue(s, case, deps, template="customer_reply",
                       automated=False)
        elsewhere = _queue(s, other, deps)
    assert statuses == ["queued", "queued", "suppressed"]
    assert over.status == "suppressed" and "about this case" in over.last_error
    assert human.status == "queued"
    assert elsewhere.status == "queued"

    clock.advance(seconds=settings.budget.window + 1)
    with sessions() as s, s.begin():
        again = _queue(s, s.merge(case), deps)
    assert again.status == "queued"


def test_budget_per_recipient_overall_ignores_suppressed_rows(
        sessions: sessionmaker[Session], deps: dict[str, Any],
        make_case: MakeCase) -> None:
    clock, settings = deps["clock"], deps["settings"]
    settings.budget.per_recipient = 3
    with sessions() as s, s.begin():
        cases = [make_case(s, clock, subject=f"Case {i}") for i in range(5)]
        rows = [_queue(s, c, deps) for c in cases]
    assert [r.status for r in rows] == ["queued"] * 3 + ["suppressed"] * 2
    assert rows[3].last_error.startswith("budget: 3 automated mails")
    assert "about this case" not in rows[3].last_error


def test_a_long_case_keeps_references_to_the_root_and_the_newest(
        sessions: sessionmaker[Session], deps: dict[str, Any],
        make_case: MakeCase) -> None:
    clock = deps["clock"]
    with sessions() as s, s.begin():
        case = make_case(s, clock)
        rows = []
        for _ in range(15):
            rows.append(_queue(s, case, deps, template="customer_reply",
                               automated=False))
            clock.advance(minutes=1)
    refs = _parse(rows[-1])["References"].split()
    ids = [r.message_id for r in rows]
    assert refs == [ids[0], *ids[-11:-1]]
    assert _parse(rows[-1])["In-Reply-To"] == ids[-2]
