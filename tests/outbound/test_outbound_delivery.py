"""The delivery worker against a real SMTP server on loopback, standing in
for the relay: it answers 4xx and 5xx, drops the connection, goes away and
comes back; the worker retries, gives up, and never sends a mail twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from casemail.addresses import Party
from casemail.clock import FrozenClock
from casemail.config import Settings
from casemail.db import models as m
from casemail.outbound.delivery import DeliveryWorker
from casemail.outbound.outbox import queue_mail
from casemail.outbound.sink import MaildirSink

MakeCase = Callable[..., m.Case]


class ScriptedRelay:
    """Accepts mail, except for recipients given a scripted answer.

    ``answers[recipient]`` is an SMTP reply for RCPT ("450 …", "550 …") or
    ``"drop"``: the connection is cut after the data, before any reply.
    """

    def __init__(self) -> None:
        self.answers: dict[str, str] = {}
        self.received: list[tuple[str, list[str], bytes]] = []
        self.ehlos = 0
        self.lock = threading.Lock()

    async def handle_EHLO(self, server: SMTP, session: Session,
                          envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        with self.lock:
            self.ehlos += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: SMTP, session: Session,
                          envelope: Envelope, address: str,
                          options: list[str]) -> str:
        answer = self.answers.get(address, "")
        if answer[:1] in ("4", "5"):
            return answer
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session,
                          envelope: Envelope) -> str:
        if any(self.answers.get(r) == "drop" for r in envelope.rcpt_tos):
            assert server.transport is not None
            server.transport.abort()
            return "250 never seen"
        with self.lock:
            self.received.append((str(envelope.mail_from),
                                  list(envelope.rcpt_tos),
                                  bytes(envelope.original_content or b"")))
        return "250 2.0.0 Queued"

    def message_ids(self) -> list[str]:
        ids = []
        for _, _, data in self.received:
            msg = email.message_from_bytes(data, policy=email.policy.default)
            ids.append(str(msg["Message-ID"]))
        return ids


class RelayServer:
    """The scripted relay on a fixed loopback port, able to go away."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.script = ScriptedRelay()
        self.controller: Controller | None = None

    def up(self) -> None:
        self.controller = Controller(self.script, hostname="127.0.0.1",
                                     port=self.port)
        self.controller.start()

    def down(self) -> None:
        controller, self.controller = self.controller, None
        if controller is not None:
            controller.stop()


@pytest.fixture(scope="module")
def relay_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Bench:
    """A database, the queueing dependencies and the scripted relay."""

    sessions: sessionmaker[DbSession]
    deps: dict[str, Any]
    make_case: MakeCase
    relay: RelayServer

    @property
    def clock(self) -> FrozenClock:
        return self.deps["clock"]

    def worker(self, name: str) -> DeliveryWorker:
        return DeliveryWorker(self.sessions, self.deps["settings"],
                              self.clock, name)

    def queue(self, recipients: list[str]) -> list[int]:
        """One merchant reply per recipient, committed; their row ids."""
        signer = self.deps["signer"]
        with self.sessions() as s, s.begin():
            case = self.make_case(s, self.clock)
            message = m.Message(party="merchant", new_text="Your key.")
            message.attachments = []
            rows = [queue_mail(
                s, case=case, template="merchant_reply", recipient=r,
                recipient_name="", party=Party.CUSTOMER,
                reply_to=signer.reply_address(case.id, Party.CUSTOMER),
                context={"case": case, "store": case.store,
                         "message": message},
                automated=False, auto_submitted="", **self.deps)
                for r in recipients]
            return [r.id for r in rows]

    def rows(self, ids: list[int]) -> list[m.Outbox]:
        with self.sessions() as s:
            return list(s.scalars(
                sa.select(m.Outbox).where(m.Outbox.id.in_(ids))
                .order_by(m.Outbox.id)))


@pytest.fixture
def bench(sessions: sessionmaker[DbSession], deps: dict[str, Any],
          make_case: MakeCase, relay_port: int) -> Iterator[Bench]:
    settings = deps["settings"]
    settings.relay.port = relay_port
    settings.relay.timeout = 5.0
    settings.relay.retry_base = 30.0
    settings.relay.retry_max = 600.0
    server = RelayServer(relay_port)
    server.up()
    yield Bench(sessions, deps, make_case, server)
    server.down()


def _pass(worker: DeliveryWorker) -> int:
    """One delivery pass in an event loop of its own, then hang up."""
    async def once() -> int:
        try:
            return await worker.run_once()
        finally:
            await worker.close()
    return asyncio.run(once())


def _addresses(count: int, prefix: str = "buyer") -> list[str]:
    return [f"{prefix}{i}@customer.example" for i in range(count)]


def test_sends_due_mail_over_one_reused_connection(
        bench: Bench) -> None:
    scripted = bench.relay.script
    ids = bench.queue(_addresses(5))
    worker = bench.worker("w1")

    async def two_passes() -> tuple[int, int, int]:
        first = await worker.run_once()
        more = bench.queue(_addresses(3, "later"))
        ids.extend(more)
        second = await worker.run_once()
        idle = await worker.run_once()
        await worker.close()
        return first, second, idle

    assert asyncio.run(two_passes()) == (5, 3, 0)
    rows = bench.rows(ids)
    assert {r.status for r in rows} == {"sent"}
    assert all(r.sent_at == bench.clock.now() and r.attempts == 1
               for r in rows)
    assert all(r.claimed_until is None for r in rows)
    assert scripted.ehlos == 1
    by_id = {r.message_id: r for r in rows}
    assert sorted(scripted.message_ids()) == sorted(by_id)
    for sender, rcpts, data in scripted.received:
        row = next(r for r in rows if r.envelope_from == sender)
        assert rcpts == [row.recipient] and data == row.data


def test_a_4xx_defers_with_backoff_then_the_mail_goes_out(
        bench: Bench) -> None:
    scripted = bench.relay.script
    clock = bench.clock
    scripted.answers["busy@customer.example"] = "450 4.2.1 Mailbox busy"
    ids = bench.queue(["busy@customer.example", "fine@customer.example"])
    worker = bench.worker("w1")
    assert _pass(worker) == 2
    busy, fine = bench.rows(ids)
    assert fine.status == "sent"
    assert (busy.status, busy.attempts) == ("deferred", 1)
    assert busy.last_error == "450 4.2.1 Mailbox busy"
    wait = busy.next_attempt_at - clock.now()
    assert dt.timedelta(seconds=24) <= wait <= dt.timedelta(seconds=30)
    assert _pass(worker) == 0  # not due yet

    del scripted.answers["busy@customer.example"]
    clock.advance(seconds=31)
    assert _pass(worker) == 1
    busy = bench.rows(ids[:1])[0]
    assert (busy.status, busy.attempts, busy.last_error) == ("sent", 2, "")
    assert len(scripted.received) == 2


def test_backoff_doubles_up_to_the_cap_and_fails_at_the_deadline(
        bench: Bench, settings: Settings) -> None:
    scripted = bench.relay.script
    clock = bench.clock
    settings.relay.retry_deadline = 1000.0
    scripted.answers["busy@customer.example"] = "421 4.3.2 Try later"
    ids = bench.queue(["busy@customer.example"])
    worker = bench.worker("w1")
    waits = []
    while True:
        _pass(worker)
        row = bench.rows(ids)[0]
        if row.status != "deferred":
            break
        waits.append((row.next_attempt_at - clock.now()).total_seconds())
        clock.set(row.next_attempt_at)
    assert row.status == "failed" and row.last_error.startswith(
        "gave up at the deadline: 421")
    # 30, 60, 120, 240, 480 (each up to 20% shorter), then clipped so the
    # last attempt happens at the deadline itself.
    for wait, full in zip(waits, [30, 60, 120, 240, 480], strict=False):
        assert 0.8 * full <= wait <= full
    assert clock.now() == row.deadline
    assert row.attempts == len(waits) + 1


def test_a_5xx_fails_for_good(
        bench: Bench) -> None:
    scripted = bench.relay.script
    scripted.answers["gone@customer.example"] = "550 5.1.1 No such user"
    ids = bench.queue(["gone@customer.example"])
    worker = bench.worker("w1")
    assert _pass(worker) == 1
    bench.clock.advance(days=1)
    assert _pass(worker) == 0
    row = bench.rows(ids)[0]
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error == "550 5.1.1 No such user"
    assert scripted.received == []


def test_a_dropped_connection_defers_and_the_next_mail_reconnects(
        bench: Bench) -> None:
    scripted = bench.relay.script
    scripted.answers["cut@customer.example"] = "drop"
    ids = bench.queue(["cut@customer.example", "fine@customer.example"])
    assert _pass(bench.worker("w1")) == 2
    cut, fine = bench.rows(ids)
    assert cut.status == "deferred"
    assert cut.last_error.startswith("connection lost: SMTPServerDisconnected")
    assert fine.status == "sent"
    assert scripted.ehlos == 2


def test_while_the_relay_is_away_mail_waits_and_goes_out_when_it_is_back(
        bench: Bench) -> None:
    scripted, server = bench.relay.script, bench.relay
    ids = bench.queue(_addresses(3))
    worker = bench.worker("w1")
    assert _pass(worker) == 3
    server.down()
    more = bench.queue(_addresses(3, "late"))
    assert _pass(worker) == 3
    rows = bench.rows(more)
    assert {r.status for r in rows} == {"deferred"}
    assert all(r.last_error.startswith("relay 127.0.0.1:")
               and "unavailable" in r.last_error for r in rows)

    server.up()
    bench.clock.advance(minutes=5)
    assert _pass(worker) == 3
    assert {r.status for r in bench.rows(ids + more)} == {"sent"}
    assert len(scripted.received) == 6


def test_a_claimed_mail_waits_until_the_claim_lapses(
        bench: Bench) -> None:
    """A worker that died mid-pass holds its claim; nobody else sends
    the mail until the claim lapses, then it is retried."""
    scripted = bench.relay.script
    clock = bench.clock
    ids = bench.queue(_addresses(1))
    with bench.sessions() as s, s.begin():
        row = s.get(m.Outbox, ids[0])
        assert row is not None
        row.claimed_by = "crashed-worker"
        row.claimed_until = clock.now() + dt.timedelta(minutes=2)
    worker = bench.worker("w2")
    assert _pass(worker) == 0
    clock.advance(minutes=3)
    assert _pass(worker) == 1
    assert len(scripted.received) == 1


def test_suppressed_mail_is_never_sent(
        bench: Bench) -> None:
    ids = bench.queue(_addresses(1))
    with bench.sessions() as s, s.begin():
        s.execute(sa.update(m.Outbox).values(status="suppressed"))
    assert _pass(bench.worker("w1")) == 0
    assert bench.rows(ids)[0].status == "suppressed"


def test_two_workers_never_send_the_same_mail(
        bench: Bench, settings: Settings) -> None:
    scripted = bench.relay.script
    settings.relay.batch_size = 7
    ids = bench.queue(_addresses(40))
    workers = [bench.worker("a"), bench.worker("b")]

    async def drain(worker: DeliveryWorker) -> int:
        total = 0
        while (n := await worker.run_once()):
            total += n
        await worker.close()
        return total

    async def both() -> list[int]:
        return list(await asyncio.gather(*(drain(w) for w in workers)))

    assert sum(asyncio.run(both())) == 40
    sent = scripted.message_ids()
    assert len(sent) == len(set(sent)) == 40
    assert {r.status for r in bench.rows(ids)} == {"sent"}


def test_run_forever_delivers_until_stopped(
        bench: Bench) -> None:
    scripted = bench.relay.script
    ids = bench.queue(_addresses(2))
    worker = bench.worker("w1")

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run_forever(stop))
        for _ in range(500):
            if len(scripted.received) == 2:
                break
            await asyncio.sleep(0.01)  # yield to the worker, not a timer
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert {r.status for r in bench.rows(ids)} == {"sent"}


def test_the_maildir_sink_keeps_each_mail_as_a_file(
        bench: Bench, settings: Settings, tmp_path: Any) -> None:
    ids = bench.queue(_addresses(2))
    with MaildirSink(tmp_path / "outbox-mail") as sink:
        assert sink.port > 0
        settings.relay.port = sink.port
        worker = bench.worker("w1")

        async def deliver() -> int:
            try:
                return await worker.run_once()
            finally:
                await worker.close()

        assert asyncio.run(deliver()) == 2
    files = list((tmp_path / "outbox-mail" / "new").iterdir())
    assert len(files) == 2
    rows = bench.rows(ids)
    stored = {m["Message-ID"]: m for m in sink.messages()}
    for row in rows:
        msg = stored[row.message_id]
        assert msg["Return-Path"] == f"<{row.envelope_from}>"
        assert msg["X-Sink-Recipients"] == row.recipient
