"""The outbound relay goes away for minutes: every queued mail waits in
the outbox, across a restart, and goes out exactly once when the relay
is back. Time moves by the frozen clock, never by sleeping."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter

from durability_kit import free_port, open_cases
from sqlalchemy import select

from casemail.clock import FrozenClock
from casemail.config import Settings
from casemail.db import models as m
from casemail.outbound.delivery import DeliveryWorker
from casemail.outbound.sink import MaildirSink
from casemail.runtime import Runtime, build_runtime


def relay_at(settings: Settings, port: int) -> Settings:
    relay = settings.relay.model_copy(update={"port": port, "timeout": 5.0})
    return settings.model_copy(update={"relay": relay})


def one_pass(worker: DeliveryWorker) -> int:
    """One delivery pass, its relay connection closed in its own loop."""
    async def run() -> int:
        try:
            return await worker.run_once()
        finally:
            await worker.close()
    return asyncio.run(run())


def outbox(rt: Runtime) -> list[m.Outbox]:
    with rt.sessions() as s:
        return list(s.scalars(select(m.Outbox).order_by(m.Outbox.id)))


def test_mail_queued_while_the_relay_is_down_goes_out_once_when_back(
        runtime: Runtime, clock: FrozenClock, tmp_path: object) -> None:
    """Ten minutes of refused connections, a restart, then the relay:
    each notification reaches it once."""
    open_cases(runtime, 4)
    port = free_port()  # nothing listens here yet
    settings = relay_at(runtime.settings, port)
    worker = DeliveryWorker(runtime.sessions, settings, clock, "first")
    queued = len(outbox(runtime))
    tries = 0
    for _ in range(10):  # the relay stays away for ten minutes
        tries += one_pass(worker)
        clock.advance(minutes=1)
    assert queued >= 4 and tries >= queued
    assert {r.status for r in outbox(runtime)} == {"deferred"}

    # casemail restarts: a new engine and worker find the same outbox.
    runtime.close()
    again = build_runtime(settings, clock=clock)
    try:
        with MaildirSink(tmp_path / "relay", port=port) as sink:  # type: ignore[operator]
            clock.advance(dt.timedelta(seconds=settings.relay.retry_max))
            worker = DeliveryWorker(again.sessions, settings, clock, "second")
            sent = one_pass(worker)
            clock.advance(dt.timedelta(seconds=settings.relay.retry_max))
            assert one_pass(worker) == 0
            received = Counter(msg["Message-ID"] for msg in sink.messages())
        rows = outbox(again)
    finally:
        again.close()

    print(f"\nrelay down: {queued} mails, {tries} refused attempts over 10 "
          f"minutes, {sent} sent on return, {sum(received.values())} "
          f"received")
    assert sent == queued
    assert {r.status for r in rows} == {"sent"}
    assert received == Counter(r.message_id for r in rows)
    assert set(received.values()) == {1}
