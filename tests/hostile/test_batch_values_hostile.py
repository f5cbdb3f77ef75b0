"""What the database refuses only at the end of a batch, what one
transaction asks twice, and what arrives at a bounce address.

A bounce whose diagnostic text PostgreSQL cannot hold (an SES notice
whose JSON says ``\\u0000``) changes its outbox row in the session,
written only when the batch is flushed: that mail alone is quarantined
and answered 250, like a mail filed on its own, and the good mail of its
batch is filed, instead of the whole batch hearing 451 on every retry.

The store's auto-reply goes out once per case even when one transaction
asks for it twice: the check reads the timeline as written, not a list
of it loaded before.

An auto-reply at a notification's bounce address (auto-responders answer
the Return-Path) is recorded, and is no bounce: the notification and the
customer's reachability stay as they were.
"""

from __future__ import annotations


import pytest
from hostile_serve import (
    Letter,
    customer,
    message_counts,
    open_cases,
    send_once,
)
from sqlalchemy import select
# Its settings fixture too: the same gateway, attacked further.
from test_batch_at_once_hostile import (
    MERCHANT,
    filing,
    first_outbox,
    reply,
    ses_bounce,
    settings,  # noqa: F401 (a fixture, used by name)
)

from casemail.addresses import Party
from casemail.cases.content import Content
from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.intake.pipeline import Pipeline
from casemail.runtime import Runtime

NUL_DIAGNOSTIC = "smtp; 550 5.1.1 mailbox gone\u0000 (relay said so)"


def postgres_only(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite holds a NUL in text; PostgreSQL refuses it")


def test_a_bounce_postgres_cannot_hold_does_not_fail_its_batch(
        runtime: Runtime, db_url: str) -> None:
    postgres_only(db_url)
    a, b = open_cases(runtime, 2)
    pipeline = Pipeline(runtime)
    good = reply(runtime, pipeline, a, Party.CUSTOMER, customer(0),
                 "<good@c>", "The key works now, thanks.")
    poison = ses_bounce(runtime, pipeline, first_outbox(runtime, b),
                        NUL_DIAGNOSTIC, "<sns-nul@ses>")

    outcomes = pipeline.process_batch([good, poison])
    # Filed on its own, the same mail is kept (quarantined) and answered
    # 250: the batch must do no worse.
    alone = pipeline.process(poison.raw, poison.envelope, poison.route,
                             poison.reading)
    assert alone.reply.startswith("250"), alone

    # The good mail must not pay for the other one.
    assert outcomes[0].status == "filed", outcomes
    assert outcomes[1].reply.startswith("250"), outcomes
    assert message_counts(runtime).get("<good@c>") == 1


def test_a_bounce_postgres_cannot_hold_gets_a_final_answer_over_smtp(
        runtime: Runtime, db_url: str, port: int) -> None:
    postgres_only(db_url)
    [case] = open_cases(runtime, 1)
    pipeline = Pipeline(runtime)
    poison = ses_bounce(runtime, pipeline, first_outbox(runtime, case),
                        NUL_DIAGNOSTIC, "<sns-nul@ses>")
    letter = Letter("<sns-nul@ses>", "", poison.envelope.recipient,
                    poison.raw)
    # A sending server retries a 451; each retry must not get it again.
    answers = [send_once(port, letter) for _ in range(3)]
    assert answers[-1][0] == 250, answers
    with runtime.sessions() as s:
        kept = list(s.scalars(select(m.RawMail.status)))
    assert kept, "the bounce was never kept"


def test_the_auto_reply_goes_out_once_per_case_within_a_transaction(
        runtime: Runtime) -> None:
    with transaction(runtime.sessions) as s:
        s.add(m.Store(slug="quiet", name="Quiet Keys",
                      sender_address="help@quiet.example",
                      created_at=runtime.clock.now(),
                      auto_reply_enabled=True,
                      auto_reply_text="We answer within a day."))
    with transaction(runtime.sessions) as s:
        case = runtime.service.open_case(
            s, store_slug="quiet", order_ref="Q-1",
            customer_address="ada@customer.example", customer_name="Ada",
            subject="Key missing",
            content=Content.typed("No key yet.", source="api"))
        # A second trigger in the same transaction.
        runtime.service.mail.auto_reply(s, case)
        case_id = case.id
    with runtime.sessions() as s:
        sent = [o.template for o in s.scalars(
            select(m.Outbox).where(m.Outbox.case_id == case_id))]
    assert sent.count("auto_reply") == 1, sent



def answered_case(rt: Runtime) -> tuple[int, m.Outbox]:
    """A case the merchant answered, and that answer's mail to the
    customer (whose bounce address the tests write to)."""
    [case] = open_cases(rt, 1)
    with transaction(rt.sessions) as s:
        rt.service.add_message(
            s, rt.service.lock_case(s, case), party=Party.MERCHANT,
            author_address=MERCHANT,
            content=Content.typed("Sent again.", source="api"))
    with rt.sessions() as s:
        outbox = s.scalars(select(m.Outbox).where(
            m.Outbox.case_id == case, m.Outbox.party == "customer")
            .order_by(m.Outbox.id.desc())).first()
        assert outbox is not None
        return case, outbox


def delivery_state(rt: Runtime, case: int,
                   outbox: m.Outbox) -> tuple[str, bool]:
    """The mail's status, and whether the customer counts as unreachable."""
    with rt.sessions() as s:
        row = s.get(m.Outbox, outbox.id)
        kept = s.get(m.Case, case)
        assert row is not None and kept is not None
        return row.status, kept.customer_unreachable


def test_an_auto_reply_at_the_bounce_address_is_no_bounce(
        runtime: Runtime) -> None:
    # Auto-responders answer the Return-Path (RFC 3834 4): our
    # notification's bounce address. An out-of-office reply there says
    # nothing about delivery and must not make the customer unreachable.
    case, outbox = answered_case(runtime)
    pipeline = Pipeline(runtime)
    ooo = (f"From: {customer(0)}\r\nTo: {outbox.envelope_from}\r\n"
           "Subject: Out of office: Re: Plugin licence\r\n"
           "Auto-Submitted: auto-replied\r\nMessage-ID: <ooo@c.example>\r\n"
           "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n\r\n"
           "I am away until Monday.\r\n").encode()
    [outcome] = pipeline.process_batch([filing(
        runtime, pipeline, outbox.envelope_from, ooo, "")])

    assert (outcome.status, outcome.reply[:3]) == ("ignored", "250")
    assert delivery_state(runtime, case, outbox) == ("queued", False)
    with runtime.sessions() as s:
        kinds = [e.kind for e in s.scalars(select(m.Event).where(
            m.Event.case_id == case).order_by(m.Event.id))]
    assert kinds[-1] == "automated"

    # A real report at the same address still counts as a bounce.
    [bounced] = pipeline.process_batch([ses_bounce(
        runtime, pipeline, outbox, "smtp; 550 5.1.1 no such user",
        "<sns-1@ses>")])
    assert bounced.status == "ignored"
    assert delivery_state(runtime, case, outbox) == ("bounced", True)


def test_a_complaint_at_the_bounce_address_still_stops_the_mail(
        runtime: Runtime) -> None:
    # A feedback report (RFC 5965) carries no delivery report for us to
    # read, but a recipient who marked our mail as spam must get no more.
    case, outbox = answered_case(runtime)
    pipeline = Pipeline(runtime)
    arf = (f"From: fbl@isp.example\r\nTo: {outbox.envelope_from}\r\n"
           "Subject: Complaint\r\nMessage-ID: <fbl-1@isp.example>\r\n"
           "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/report; report-type=feedback-report;"
           " boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
           "A user marked this as spam.\r\n--b\r\n"
           "Content-Type: message/feedback-report\r\n\r\n"
           "Feedback-Type: abuse\r\nUser-Agent: ISP-FBL/1.0\r\n"
           "Version: 1\r\n--b--\r\n").encode()
    [outcome] = pipeline.process_batch([filing(
        runtime, pipeline, outbox.envelope_from, arf, "")])

    assert outcome.status == "ignored"
    assert delivery_state(runtime, case, outbox) == ("bounced", True)
