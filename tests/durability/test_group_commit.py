"""Several mails in one transaction: each keeps its own outcome.

``Pipeline.process_batch`` files a batch in one transaction: a clean
batch all at once, otherwise again with a savepoint per mail. A mail
refused or quarantined must undo only its own part; a mail given twice in one batch is filed once; when the database
cannot be used at all, nothing of the batch is kept and every mail is
answered as failed. Over real SMTP, concurrent sessions are filed in
batches and every mail exactly once.
"""

from __future__ import annotations

import logging
import smtplib
from concurrent.futures import ThreadPoolExecutor

import pytest
from durability_kit import (
    MERCHANT,
    customer,
    make_mail,
    message_counts,
    open_cases,
    reply_address,
    statements_sent,
)
from sqlalchemy import create_engine, func, select

from casemail.addresses import Party
from casemail.cases.content import Content
from casemail.cases.threading import route_recipient
from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.intake.pipeline import Envelope, Filing, Pipeline
from casemail.runtime import Runtime


def filing(rt: Runtime, pipeline: Pipeline, to: str, raw: bytes,
           sender: str) -> Filing:
    route = route_recipient(rt.signer, to)
    return Filing(raw, Envelope(sender, to, "127.0.0.1"), route,
                  pipeline.read(raw, sender))


def plain_replies(rt: Runtime, pipeline: Pipeline, cases: list[int],
                  tag: str) -> list[Filing]:
    """One customer's reply into each case, Message-IDs marked ``tag``."""
    filings = []
    for n, case in enumerate(cases):
        to = reply_address(rt, case, Party.CUSTOMER)
        raw = make_mail(sender=customer(n), to=to, subject="Re: order",
                        text=f"Reply {n}", message_id=f"<{tag}{n}@c.example>")
        filings.append(filing(rt, pipeline, to, raw, customer(n)))
    return filings


def counts(rt: Runtime, case_id: int | None = None) -> dict[str, int]:
    """Rows of each kind, of one case where it has them."""
    with rt.sessions() as s:
        def n(model: type[m.Base]) -> int:
            query = select(func.count()).select_from(model)
            if case_id is not None and model is not m.RawMail:
                query = query.where(model.case_id == case_id)  # type: ignore[attr-defined]
            return s.scalar(query) or 0
        return {"raw": n(m.RawMail), "messages": n(m.Message),
                "events": n(m.Event), "outbox": n(m.Outbox)}


def test_each_mail_of_a_batch_keeps_its_own_outcome(runtime: Runtime) -> None:
    cases = open_cases(runtime, 3)
    before = counts(runtime)
    broken_case = counts(runtime, cases[1])
    pipeline = Pipeline(runtime)

    def reply(n: int, mid: str, **extra: str) -> Filing:
        to = reply_address(runtime, cases[n], Party.CUSTOMER)
        raw = make_mail(sender=customer(n), to=to, subject="Re: order",
                        text=f"Reply {mid}", message_id=mid, **extra)
        return filing(runtime, pipeline, to, raw, customer(n))

    first = reply(0, "<a@customer.example>")
    # Its attachment cannot be stored: a file where the folder should be.
    blocker = runtime.settings.files_dir
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a directory\n")
    broken = reply(1, "<b@customer.example>", png="shot.png")
    # Token-less and answering nothing of ours: belongs to no case.
    stray_to = f"case@{runtime.settings.reply_domain}"
    stray_raw = make_mail(sender=customer(9), to=stray_to, subject="Hello",
                          text="Anyone there?", message_id="<c@x.example>")
    stray = filing(runtime, pipeline, stray_to, stray_raw, customer(9))
    third = reply(2, "<d@customer.example>")

    outcomes = pipeline.process_batch([first, broken, stray, third, first])

    assert [o.status for o in outcomes] == [
        "filed", "quarantined", "refused", "filed", "duplicate"]
    assert outcomes[2].reply.startswith("550")
    assert message_counts(runtime) == {"<a@customer.example>": 1,
                                       "<d@customer.example>": 1}
    after = counts(runtime)
    # Two replies filed, each with its notification; the quarantined mail
    # left its raw row and nothing else; the refused one left nothing.
    assert after["raw"] - before["raw"] == 3
    assert after["messages"] - before["messages"] == 2
    assert after["outbox"] - before["outbox"] == 2
    with runtime.sessions() as s:
        statuses = sorted(s.scalars(select(m.RawMail.status)))
    assert statuses == ["filed", "filed", "quarantined"]
    # Its case has no trace of the attempt: no message, event or mail.
    assert {k: v for k, v in counts(runtime, cases[1]).items()
            if k != "raw"} == {k: v for k, v in broken_case.items()
                               if k != "raw"}


def test_a_clean_batch_is_written_without_a_savepoint_per_mail(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    pipeline = Pipeline(runtime)
    filings = plain_replies(runtime, pipeline, open_cases(runtime, 3), "s")
    before = counts(runtime)
    with statements_sent(runtime.engine) as sent, \
            caplog.at_level(logging.INFO, logger="casemail.intake.pipeline"):
        outcomes = pipeline.process_batch(filings)
    statements = [s.split()[0].upper() for s in sent]

    assert [o.status for o in outcomes] == ["filed"] * 3
    assert "SAVEPOINT" not in statements
    assert "undone" not in caplog.text
    after = counts(runtime)
    assert after["messages"] - before["messages"] == 3
    assert after["outbox"] - before["outbox"] == 3


def test_a_batch_loads_all_its_cases_in_one_statement(
        runtime: Runtime) -> None:
    # Each mail needs its case, locked, with the store's team: asked for
    # one by one, that is a round trip per mail on top of the batch's
    # ordered locks. One statement loads and locks them all.
    pipeline = Pipeline(runtime)
    filings = plain_replies(runtime, pipeline, open_cases(runtime, 4), "l")
    with statements_sent(runtime.engine) as sent:
        outcomes = pipeline.process_batch(filings)
    reads = [s.upper() for s in sent if s.upper().startswith("SELECT")
             and " FROM CASES" in s.upper()]

    assert [o.status for o in outcomes] == ["filed"] * 4
    assert len(reads) == 1, reads
    if runtime.engine.dialect.name == "postgresql":
        assert "FOR NO KEY UPDATE OF CASES" in reads[0]


def test_replies_to_one_case_in_one_batch_each_move_it_in_turn(
        runtime: Runtime) -> None:
    # The merchant answered: the case waits for the customer. Two of the
    # customer's replies then arrive in one batch; the second finds the
    # case as the first left it, not as the database last had it.
    case_id = open_cases(runtime, 1)[0]
    with transaction(runtime.sessions) as s:
        case = runtime.service.lock_case(s, case_id)
        runtime.service.add_message(
            s, case, party=Party.MERCHANT, author_address=MERCHANT,
            content=Content.typed("Sent again.", source="api"))
    pipeline = Pipeline(runtime)
    to = reply_address(runtime, case_id, Party.CUSTOMER)
    filings = [filing(runtime, pipeline, to, make_mail(
        sender=customer(0), to=to, subject="Re: order", text=text,
        message_id=f"<t{n}@c.example>"), customer(0))
        for n, text in enumerate(["Got nothing.", "Still nothing."])]

    outcomes = pipeline.process_batch(filings)

    assert [o.status for o in outcomes] == ["filed", "filed"]
    with runtime.sessions() as s:
        case = s.get(m.Case, case_id)
        assert case is not None and case.state == "awaiting_merchant"
        assert case.unread
        moves = [e.detail for e in s.scalars(
            select(m.Event).where(m.Event.case_id == case_id,
                                  m.Event.kind == "state_changed")
            .order_by(m.Event.id))]
        texts = list(s.scalars(select(m.Message.new_text).where(
            m.Message.case_id == case_id, m.Message.party == "customer")
            .order_by(m.Message.id)))
    # One move only: the second reply found the case already waiting.
    assert [(d["before"], d["after"]) for d in moves] == [
        ("awaiting_merchant", "awaiting_customer"),
        ("awaiting_customer", "awaiting_merchant")]
    assert [t.strip() for t in texts][-2:] == ["Got nothing.",
                                              "Still nothing."]


def test_a_batch_the_database_cannot_take_is_answered_as_failed(
        runtime: Runtime) -> None:
    pipeline = Pipeline(runtime)
    filings = plain_replies(runtime, pipeline, open_cases(runtime, 2), "f")
    before = counts(runtime)
    if runtime.settings.db_url.startswith("sqlite"):
        gone = "sqlite:////nonexistent-casemail-dir/gone.db"
    else:
        gone = "postgresql+psycopg://postgres@127.0.0.1:9/test"
    runtime.sessions.configure(bind=create_engine(gone))

    outcomes = pipeline.process_batch(filings)

    assert [(o.status, o.reply[:9]) for o in outcomes] == [
        ("failed", "451 4.3.0")] * 2
    runtime.sessions.configure(bind=runtime.engine)
    assert counts(runtime) == before


def test_concurrent_sessions_are_filed_in_batches_and_once(
        runtime: Runtime, smtp_port: int,
        caplog: pytest.LogCaptureFixture) -> None:
    cases = open_cases(runtime, 8)
    letters = []
    for n in range(48):
        case = cases[n % len(cases)]
        to = reply_address(runtime, case, Party.CUSTOMER)
        mid = f"<load-{n}@customer.example>"
        letters.append((to, make_mail(
            sender=customer(n), to=to, subject="Re: order",
            text=f"Message number {n}.", message_id=mid)))

    def send(k: int) -> list[int]:
        codes = []
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
            for to, raw in letters[k::8]:
                client.sendmail(customer(0), [to], raw)
                codes.append(250)
        return codes

    caplog.set_level(logging.DEBUG, logger="casemail.intake.batching")
    with ThreadPoolExecutor(8) as pool:
        sent = [c for codes in pool.map(send, range(8)) for c in codes]

    assert sent == [250] * 48
    assert message_counts(runtime) == {
        f"<load-{n}@customer.example>": 1 for n in range(48)}
    assert any("in one transaction" in r.getMessage()
               for r in caplog.records)
