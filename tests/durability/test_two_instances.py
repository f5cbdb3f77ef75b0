"""Two ``casemail serve`` processes on one PostgreSQL database, customers
and the merchant replying to the same cases through both at once: each
mail filed once, each case's states one unbroken chain, each notification
sent once through the two delivery workers."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from durability_kit import (
    MERCHANT,
    Letter,
    Served,
    Tally,
    count_by,
    customer,
    deliver,
    free_port,
    make_mail,
    message_counts,
    open_cases,
    reply_address,
    serve_env,
)
from sqlalchemy import select

from casemail.addresses import Party
from casemail.db import models as m
from casemail.outbound.sink import MaildirSink
from casemail.runtime import Runtime

CASES = 6
PER_CASE = 10
DRAIN_TIMEOUT = 40.0


def conversation(rt: Runtime, cases: list[int]) -> list[Letter]:
    """Customer and merchant taking turns on every case."""
    letters = []
    for i, case in enumerate(cases):
        for n in range(PER_CASE):
            party = Party.MERCHANT if n % 2 else Party.CUSTOMER
            sender = MERCHANT if n % 2 else customer(i)
            to = reply_address(rt, case, party)
            mid = f"<both-{i}-{n}@{party.value}.example>"
            letters.append(Letter(mid, sender, to, make_mail(
                sender=sender, to=to, subject=f"Re: licence {i}",
                text=f"Turn {n} on case {i}.", message_id=mid)))
    return letters


def send_through(ports: list[int], letters: list[Letter],
                 rng: random.Random) -> Tally:
    """Eight senders; every letter through one instance, one in four
    through both at the same moment (a redelivery racing itself)."""
    jobs = []
    for letter in letters:
        jobs.append((rng.choice(ports), letter))
        if rng.random() < 0.25:
            jobs.append((ports[0] + ports[1] - jobs[-1][0], letter))
    rng.shuffle(jobs)
    tallies = [Tally() for _ in range(8)]
    deadline = time.monotonic() + 40

    def work(tally: Tally, mine: list[tuple[int, Letter]]) -> None:
        for port, letter in mine:
            deliver(port, letter, tally, deadline=deadline)

    threads = [threading.Thread(target=work, args=(t, jobs[k::8]))
               for k, t in enumerate(tallies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    total = Tally()
    for t in tallies:
        total.acked += t.acked
        total.attempts += t.attempts
        total.duplicates += t.duplicates
        total.refusals += t.refusals
    return total


def wait_sent(rt: Runtime) -> list[m.Outbox]:
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while True:
        with rt.sessions() as s:
            rows = list(s.scalars(select(m.Outbox)))
        if all(r.status == "sent" for r in rows) or \
                time.monotonic() > deadline:
            return rows
        time.sleep(0.1)  # polling the workers' progress, with a deadline


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_two_instances_file_each_mail_once_and_lose_no_update(
        runtime: Runtime, db_url: str, tmp_path: Path) -> None:
    """Both instances answer 250 to everything; afterwards the database
    and the relay's mailbox hold each thing exactly once."""
    started = time.monotonic()
    cases = open_cases(runtime, CASES)
    letters = conversation(runtime, cases)
    with MaildirSink(tmp_path / "relay") as sink:
        ports = [free_port(), free_port()]
        servers = [Served(serve_env(runtime.settings, port,
                                    relay_port=sink.port), port,
                          tmp_path / f"serve-{port}.log") for port in ports]
        with servers[0], servers[1]:
            tally = send_through(ports, letters, random.Random(7))
            rows = wait_sent(runtime)
            codes = [server.terminate() for server in servers]
        received = Counter(msg["Message-ID"] for msg in sink.messages())

    print(f"\ntwo instances: {len(letters)} mails, {tally.attempts} "
          f"deliveries, {tally.duplicates} answered 'already filed', "
          f"{len(rows)} notifications, {sum(received.values())} received "
          f"by the relay, {time.monotonic() - started:.1f}s")
    assert codes == [0, 0]
    assert not tally.refusals
    assert message_counts(runtime) == {x.message_id: 1 for x in letters}
    assert len(count_by(runtime, m.RawMail.idem_key)) == len(letters)
    assert {r.status for r in rows} == {"sent"}
    assert received == Counter(r.message_id for r in rows)
    assert set(received.values()) == {1}
    templates = Counter(r.template for r in rows)
    assert templates["customer_reply"] == templates["merchant_reply"] \
        == len(letters) // 2
    for case in cases:
        _assert_one_chain(runtime, case)


def _assert_one_chain(rt: Runtime, case_id: int) -> None:
    """Each state change starts where the one before ended: a lost
    update would show two changes from the same state."""
    with rt.sessions() as s:
        case = s.get(m.Case, case_id)
        assert case is not None
        changes = list(s.scalars(select(m.Event).where(
            m.Event.case_id == case_id, m.Event.kind == "state_changed")
            .order_by(m.Event.id)))
        messages = s.scalars(select(m.Message.party).where(
            m.Message.case_id == case_id).order_by(m.Message.id)).all()
        state = "awaiting_merchant"
        for change in changes:
            assert change.detail["before"] == state
            state = change.detail["after"]
        assert state == case.state
    # The last writer decides: the merchant's reply waits on the customer.
    last = messages[-1]
    assert case.state == ("awaiting_customer" if last == "merchant"
                          else "awaiting_merchant")
