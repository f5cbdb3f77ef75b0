"""A batch written all at once, attacked with every kind of mail that
makes it fall back to a savepoint per mail, and with a database that
fails under it.

One batch holds clean replies, two replies and a merchant answer to one
case, a merchant-side mail from a stranger (held), an out-of-office
reply, a bounce of one of our notifications, the same mail twice, a mail
whose attachment cannot be stored and a mail for no case: each sender
hears its own outcome, what was refused or quarantined left nothing on
its case, nothing is filed twice, and only the filed mails queued
notifications. Then the commit itself fails (the PostgreSQL backend
killed at COMMIT, SQLite out of room mid-batch): every sender is told
to retry, nothing is kept, and the retry files each mail once. Last,
reply addresses of a known case in other spellings, postmaster and a
bounce address at RCPT, over real SMTP.
"""

from __future__ import annotations

import json
import smtplib
import time
from pathlib import Path
from typing import Any

import pytest
from hostile_serve import (
    customer,
    make_mail,
    message_counts,
    open_cases,
    reply_address,
    rows_of,
)
from sqlalchemy import create_engine, event, select, text

from casemail.addresses import Party
from casemail.cases.threading import route_recipient
from casemail.config import Settings, load_settings
from casemail.db import models as m
from casemail.intake.pipeline import Envelope, Filing, Pipeline
from casemail.runtime import Runtime

MERCHANT = "desk@nordlicht-audio.example"  # the team of ``open_cases``


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return load_settings(
        None, data_dir=tmp_path / "var", database_url=db_url,
        signing_keys={"1": "hostile-at-once-key-0123456789abcdef"},
        max_processing_attempts=3,
        listener={"host": "127.0.0.1", "port": 0})


def filing(rt: Runtime, pipeline: Pipeline, to: str, raw: bytes,
           mail_from: str) -> Filing:
    return Filing(raw, Envelope(mail_from, to, "127.0.0.1"),
                  route_recipient(rt.signer, to), pipeline.read(raw, mail_from))


def reply(rt: Runtime, pipeline: Pipeline, case: int, party: Party,
          sender: str, mid: str, body: str, **extra: str) -> Filing:
    to = reply_address(rt, case, party)
    return filing(rt, pipeline, to, make_mail(
        sender=sender, to=to, subject="Re: licence", text=body,
        message_id=mid, **extra), sender)


def out_of_office(rt: Runtime, pipeline: Pipeline, case: int) -> Filing:
    to = reply_address(rt, case, Party.CUSTOMER)
    raw = (f"From: {customer(1)}\r\nTo: {to}\r\nSubject: Out of office\r\n"
           "Auto-Submitted: auto-replied\r\nMessage-ID: <ooo@c.example>\r\n"
           "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n\r\n"
           "I am away until Monday.\r\n").encode()
    return filing(rt, pipeline, to, raw, customer(1))


def ses_bounce(rt: Runtime, pipeline: Pipeline, outbox: m.Outbox,
               diagnostic: str, mid: str) -> Filing:
    """An Amazon SES bounce notice for ``outbox``, to its VERP address."""
    inner = {"notificationType": "Bounce", "bounce": {
        "bounceType": "Permanent", "bouncedRecipients": [{
            "emailAddress": outbox.recipient, "action": "failed",
            "status": "5.1.1", "diagnosticCode": diagnostic}]},
        "mail": {"source": outbox.envelope_from, "headers": [
            {"name": "Message-ID", "value": outbox.message_id}]}}
    body = json.dumps({"Type": "Notification", "Message": json.dumps(inner)},
                      indent=1).replace("\n", "\r\n")
    raw = (f"From: Bounces <no-reply@sns.amazonaws.com>\r\n"
           f"To: {outbox.envelope_from}\r\nSubject: AWS Notification "
           f"Message\r\nMessage-ID: {mid}\r\n"
           "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
           "Content-Type: text/plain; charset=UTF-8\r\n\r\n"
           f"{body}\r\n").encode()
    return filing(rt, pipeline, outbox.envelope_from, raw, "")


def first_outbox(rt: Runtime, case: int) -> m.Outbox:
    with rt.sessions() as s:
        row = s.scalars(select(m.Outbox).where(m.Outbox.case_id == case)
                        .order_by(m.Outbox.id)).first()
        assert row is not None
        return row


def snapshot(rt: Runtime) -> dict[str, Any]:
    """Everything a batch could leave behind."""
    with rt.sessions() as s:
        return {
            "rows": rows_of(rt),
            "cases": sorted(
                (c.id, c.state, c.unread, c.customer_unreachable)
                for c in s.scalars(select(m.Case))),
            "outbox": sorted((o.id, o.status, o.dsn_status)
                             for o in s.scalars(select(m.Outbox))),
        }


def test_every_kind_of_mail_in_one_batch_keeps_its_own_outcome(
        runtime: Runtime) -> None:
    a, b, c = open_cases(runtime, 3)
    pipeline = Pipeline(runtime)
    bounced = first_outbox(runtime, c)  # the merchant's new-case mail
    before = rows_of(runtime)
    outbox_before = {o for o, *_ in snapshot(runtime)["outbox"]}

    a1 = reply(runtime, pipeline, a, Party.CUSTOMER, customer(0), "<a1@c>",
               "Still no key.")
    a2 = reply(runtime, pipeline, a, Party.CUSTOMER, customer(0), "<a2@c>",
               "Any news?")
    a3 = reply(runtime, pipeline, a, Party.MERCHANT, MERCHANT, "<a3@m>",
               "Sent it again, please check your spam folder.")
    stranger = reply(runtime, pipeline, b, Party.MERCHANT,
                     "mallory@elsewhere.example", "<held@x>",
                     "Refund approved, click here.")
    ooo = out_of_office(runtime, pipeline, b)
    bounce = ses_bounce(runtime, pipeline, bounced,
                        "smtp; 550 5.1.1 user unknown", "<sns-1@ses>")
    # Its attachment cannot be stored: a file where the folder should be.
    files = runtime.settings.files_dir
    files.parent.mkdir(parents=True, exist_ok=True)
    files.write_text("not a directory\n")
    broken = reply(runtime, pipeline, c, Party.CUSTOMER, customer(2),
                   "<png@c>", "Screenshot attached.", png="shot.png")
    stray_to = f"case@{runtime.settings.reply_domain}"
    stray = filing(runtime, pipeline, stray_to, make_mail(
        sender=customer(9), to=stray_to, subject="Hello", text="Hi?",
        message_id="<stray@x>"), customer(9))
    b1 = reply(runtime, pipeline, b, Party.CUSTOMER, customer(1), "<b1@c>",
               "The plugin still says invalid.")

    outcomes = pipeline.process_batch(
        [a1, a2, a3, stranger, ooo, bounce, a1, broken, stray, b1])

    assert [o.status for o in outcomes] == [
        "filed", "filed", "filed", "held", "ignored", "ignored",
        "duplicate", "quarantined", "refused", "filed"]
    assert [o.reply[:3] for o in outcomes] == ["250"] * 8 + ["550", "250"]
    assert [o.case_id for o in outcomes[:6]] == [a, a, a, b, b, c]

    counts = message_counts(runtime)
    for mid in ("<a1@c>", "<a2@c>", "<a3@m>", "<held@x>", "<ooo@c.example>",
                "<b1@c>"):
        assert counts.get(mid) == 1, (mid, counts)
    assert "<png@c>" not in counts and "<stray@x>" not in counts
    after = rows_of(runtime)
    # Raw rows: a1, a2, a3, held, ooo, bounce, broken (quarantined), b1.
    assert after["raw_mails"] - before["raw_mails"] == 8
    assert after["attachments"] == before["attachments"]

    with runtime.sessions() as s:
        new_mail = [(o.case_id, o.template, o.party) for o in s.scalars(
            select(m.Outbox).order_by(m.Outbox.id))
            if o.id not in outbox_before]
        # Only the four filed mails told anyone; held, automated, bounce,
        # quarantined and refused mail queued nothing.
        assert new_mail == [(a, "customer_reply", "merchant"),
                            (a, "customer_reply", "merchant"),
                            (a, "merchant_reply", "customer"),
                            (b, "customer_reply", "merchant")]
        case_a, case_b, case_c = (s.get(m.Case, x) for x in (a, b, c))
        assert case_a.state == "awaiting_customer"
        assert case_b.state == "awaiting_merchant" and case_b.unread
        # The bounce was of a merchant's mail: the customer is reachable.
        assert not case_c.customer_unreachable
        assert s.get(m.Outbox, bounced.id).status == "bounced"
        # Case A's timeline, in the order the mails came.
        kinds = [(e.kind, e.message.message_id if e.message else None,
                  e.detail.get("after"))
                 for e in s.scalars(select(m.Event).where(
                     m.Event.case_id == a).order_by(m.Event.id))][2:]
        assert kinds == [("message", "<a1@c>", None),
                         ("message", "<a2@c>", None),
                         ("message", "<a3@m>", None),
                         ("state_changed", "<a3@m>", "awaiting_customer")]
        # Case C: the delivery problem, and no trace of the broken mail.
        c_kinds = [e.kind for e in s.scalars(select(m.Event).where(
            m.Event.case_id == c).order_by(m.Event.id))]
        assert c_kinds[-1] == "delivery_problem"
        assert c_kinds.count("message") == 1  # the opening one
        statuses = sorted(r.status for r in s.scalars(
            select(m.RawMail)))
    assert statuses == sorted(["filed"] * 4 + ["held", "ignored", "ignored",
                                               "quarantined"])

    # The whole batch again, as the senders' retries: all of it known.
    again = pipeline.process_batch([a1, a2, a3, stranger, ooo, bounce, b1])
    assert {o.status for o in again} == {"duplicate"}
    assert rows_of(runtime) == after


# -- the database fails under the batch --------------------------------------


def _batch(rt: Runtime, pipeline: Pipeline, cases: list[int], tag: str,
           *, duplicate: bool) -> list[Filing]:
    filings = [reply(rt, pipeline, case, Party.CUSTOMER, customer(n),
                     f"<{tag}{n}@c>", f"Reply {n}. " + "words " * 4000)
               for n, case in enumerate(cases)]
    filings.append(reply(rt, pipeline, cases[0], Party.MERCHANT, MERCHANT,
                         f"<{tag}m@m>", "We are on it."))
    if duplicate:  # the batch falls back to a savepoint per mail
        filings.append(filings[0])
    return filings


def _retried_once(rt: Runtime, pipeline: Pipeline, filings: list[Filing],
                  before: dict[str, Any], tag: str) -> None:
    """Nothing of the failed batch was kept; its retry files each once."""
    assert snapshot(rt) == before
    outcomes = pipeline.process_batch(filings)
    assert {o.status for o in outcomes} <= {"filed", "duplicate"}
    assert sum(o.status == "filed" for o in outcomes) == 4
    counts = message_counts(rt)
    assert {k: v for k, v in counts.items() if k.startswith(f"<{tag}")} == \
        {f"<{tag}0@c>": 1, f"<{tag}1@c>": 1, f"<{tag}2@c>": 1,
         f"<{tag}m@m>": 1}
    with rt.sessions() as s:
        mine = [o.template for o in s.scalars(select(m.Outbox))
                if o.template in ("customer_reply", "merchant_reply")]
    assert sorted(mine) == ["customer_reply"] * 3 + ["merchant_reply"]


def test_a_mail_after_a_bounce_in_one_batch_no_longer_threads_on_it(
        runtime: Runtime) -> None:
    # Filed one by one, a bounced mail has left the case's References
    # chain before the next notification is composed; in one batch it
    # must have too, though nothing is flushed between the two mails.
    [case] = open_cases(runtime, 1)
    pipeline = Pipeline(runtime)
    answer = reply(runtime, pipeline, case, Party.MERCHANT, MERCHANT,
                   "<m1@m>", "Your key is ABC-1.")
    assert pipeline.process_batch([answer])[0].status == "filed"
    with runtime.sessions() as s:
        bounced = s.scalars(select(m.Outbox).where(
            m.Outbox.case_id == case, m.Outbox.party == "customer")).one()

    outcomes = pipeline.process_batch([
        ses_bounce(runtime, pipeline, bounced, "smtp; 550 5.1.1 no such user",
                   "<sns-b@ses>"),
        reply(runtime, pipeline, case, Party.MERCHANT, MERCHANT, "<m2@m>",
              "Or try ABC-2.")])

    assert [o.status for o in outcomes] == ["ignored", "filed"]
    with runtime.sessions() as s:
        rows = s.scalars(select(m.Outbox).where(
            m.Outbox.case_id == case, m.Outbox.party == "customer")
            .order_by(m.Outbox.id)).all()
    assert [r.status for r in rows] == ["bounced", "suppressed"]
    head = rows[-1].data.split(b"\r\n\r\n")[0]
    assert b"References:" in head or b"In-Reply-To:" in head
    assert bounced.message_id.encode() not in head


@pytest.mark.parametrize("duplicate", [False, True],
                         ids=["at-once", "mail-by-mail"])
def test_postgres_killed_at_commit_keeps_nothing_and_the_retry_files_once(
        runtime: Runtime, db_url: str, duplicate: bool) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("a backend to kill: PostgreSQL")
    cases = open_cases(runtime, 3)
    pipeline = Pipeline(runtime)
    filings = _batch(runtime, pipeline, cases, "k", duplicate=duplicate)
    before = snapshot(runtime)
    killer = create_engine(db_url)
    killed: list[int] = []

    def at_commit(conn: Any) -> None:
        if killed:
            return
        pid = conn.connection.dbapi_connection.info.backend_pid
        with killer.begin() as other:
            other.execute(text("SELECT pg_terminate_backend(:p)"),
                          {"p": pid})
            deadline = time.monotonic() + 10
            while other.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                    {"p": pid}).scalar_one() and time.monotonic() < deadline:
                time.sleep(0.01)  # the backend takes a moment to go
        killed.append(pid)

    event.listen(runtime.engine, "commit", at_commit)
    try:
        outcomes = pipeline.process_batch(filings)
    finally:
        event.remove(runtime.engine, "commit", at_commit)
        killer.dispose()
    assert killed
    assert [(o.status, o.reply[:3]) for o in outcomes] == \
        [("failed", "451")] * len(filings)
    _retried_once(runtime, pipeline, filings, before, "k")


def test_sqlite_out_of_room_mid_batch_keeps_nothing_and_the_retry_files_once(
        runtime: Runtime, db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite's own page limit")
    cases = open_cases(runtime, 3)
    pipeline = Pipeline(runtime)
    filings = _batch(runtime, pipeline, cases, "f", duplicate=False)
    before = snapshot(runtime)
    full = {"on": True}

    def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        # The file may not grow by a page: SQLite answers "database or
        # disk is full", as on a full disk.
        pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
        limit = pages if full["on"] else 1073741823
        dbapi_conn.execute(f"PRAGMA max_page_count = {limit}")

    event.listen(runtime.engine.pool, "checkout", checkout)
    try:
        outcomes = pipeline.process_batch(filings)
        assert [(o.status, o.reply[:3]) for o in outcomes] == \
            [("failed", "451")] * len(filings)
        full["on"] = False
        _retried_once(runtime, pipeline, filings, before, "f")
    finally:
        event.remove(runtime.engine.pool, "checkout", checkout)


# -- RCPT routed on the event loop -------------------------------------------


def test_spellings_of_a_known_case_postmaster_and_verp_are_filed_once(
        runtime: Runtime, port: int) -> None:
    [case] = open_cases(runtime, 1)
    domain = runtime.settings.reply_domain
    real = reply_address(runtime, case, Party.CUSTOMER)
    local, _, dom = real.partition("@")
    spellings = [real, real.upper(), f"{local.upper()}@{dom}",
                 f"<{real}>", f"{local}@{dom.upper()}"]
    postmasters = [f"postmaster@{domain}", f"PostMaster@{domain.upper()}"]
    verp = first_outbox(runtime, case).envelope_from

    def session(rcpts: list[str], mid: str) -> tuple[list[int], int]:
        raw = make_mail(sender=customer(0), to=real, subject="Re: key",
                        text="Same words to every spelling.",
                        message_id=mid)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo("mx.customer.example")
            assert client.mail(customer(0))[0] == 250
            codes = [client.rcpt(r.strip("<>"))[0] for r in rcpts]
            return codes, client.data(raw)[0]

    # Twice: the first time the case is looked up, then it is known.
    for mid in ("<spell-1@c>", "<spell-2@c>"):
        codes, answer = session(spellings + postmasters + [verp.upper()],
                                mid)
        assert codes == [250] * 8
        assert answer == 250
        with runtime.sessions() as s:
            parties = sorted(s.scalars(select(m.Message.party).where(
                m.Message.message_id == mid)))
        # Filed once from the customer; the copy for the VERP address is
        # no delivery report: recorded on the case, on the side of the
        # notification's recipient (the merchant), nothing moved.
        assert parties == ["customer", "merchant"]
    with runtime.sessions() as s:
        raws = list(s.scalars(select(m.RawMail)))
    by_status: dict[str, int] = {}
    for row in raws:
        by_status[row.status] = by_status.get(row.status, 0) + 1
    # Per mail: one filed (all spellings are one recipient), one for the
    # postmaster (both spellings of it are one), one for the VERP address
    # (recorded on the case, nothing moved).
    assert by_status.get("filed") == 2, by_status
    assert by_status.get("postmaster") == 2, by_status
    assert by_status.get("ignored") == 2, by_status
    assert len(raws) == 6, by_status
