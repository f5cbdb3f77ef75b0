"""A batch that PostgreSQL undoes to break a deadlock is written again,
and its mails are answered 250, not 451.

The batch locks its cases lowest id first; another writer (here a plain
transaction, as the sweep or the API would hold) takes the same two the
other way round. The batch's connection looks for deadlocks first (a
shorter ``deadlock_timeout``), so it is the one undone."""

from __future__ import annotations

import threading
import time

import pytest
from durability_kit import customer, make_mail, open_cases, reply_address
from sqlalchemy import event, select, text

from casemail.addresses import Party
from casemail.db import models as m
from casemail.intake.pipeline import Filing, Outcome, Pipeline
from casemail.intake.rawstore import Envelope
from casemail.runtime import Runtime, build_runtime

NAME = "casemail_deadlock_batch"


def _waiting(rt: Runtime) -> bool:
    with rt.engine.connect() as conn:
        return bool(conn.execute(text(
            "select count(*) from pg_stat_activity where application_name"
            " = :n and wait_event_type = 'Lock'"), {"n": NAME}).scalar_one())


def test_a_batch_undone_by_a_deadlock_is_written_again(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("deadlocks between row locks: PostgreSQL only")
    a, b = sorted(open_cases(runtime, 2))
    url = runtime.settings.db_url
    named = runtime.settings.model_copy(update={"database_url": url + (
        "&" if "?" in url else "?") + f"application_name={NAME}"})
    batch_rt = build_runtime(named, clock=runtime.clock, migrate_db=False)
    event.listen(batch_rt.engine, "connect", lambda dbapi, _: dbapi.execute(
        "set deadlock_timeout = '200ms'"))
    pipeline = Pipeline(batch_rt)
    filings = []
    for n, case in enumerate((a, b)):
        to = reply_address(runtime, case, Party.CUSTOMER)
        raw = make_mail(sender=customer(n), to=to, subject="Re: key",
                        text=f"Still broken ({n}).",
                        message_id=f"<dl-{n}@customer.example>")
        filings.append(Filing(raw, Envelope(customer(n), to),
                              pipeline.route(to), pipeline.read(raw,
                                                                customer(n))))
    outcomes: list[Outcome] = []
    writer = threading.Thread(
        target=lambda: outcomes.extend(pipeline.process_batch(filings)))
    try:
        with runtime.engine.connect() as other:
            other.execute(text("set deadlock_timeout = '20s'"))
            other.execute(text("select id from cases where id = :id for "
                               "no key update"), {"id": b})
            writer.start()  # takes a, then waits for b
            deadline = time.monotonic() + 20
            while not _waiting(batch_rt) and time.monotonic() < deadline:
                time.sleep(0.02)
            # Waits for a: a cycle, which the batch's side finds first.
            other.execute(text("select id from cases where id = :id for "
                               "no key update"), {"id": a})
            other.commit()
        writer.join(30)
    finally:
        batch_rt.close()
    assert [o.status for o in outcomes] == ["filed", "filed"]
    assert "deadlock victim, written again" in caplog.text
    with runtime.sessions() as s:
        assert len(s.scalars(select(m.Message).where(
            m.Message.message_id.like("<dl-%"))).all()) == 2
