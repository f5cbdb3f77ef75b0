"""``casemail serve`` killed with SIGKILL again and again under load, on
PostgreSQL: every mail answered 250 is filed exactly once, and so is every
mail the senders had to retry."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
from durability_kit import (
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
from sqlalchemy import func, select

from casemail.addresses import Party
from casemail.db import models as m
from casemail.runtime import Runtime

KILLS = 20
LETTERS = 200
SENDERS = 6
BUDGET = 50.0  # seconds the senders may take in all


def letters_for(rt: Runtime, cases: list[int]) -> list[Letter]:
    out = []
    for n in range(LETTERS):
        i = n % len(cases)
        to = reply_address(rt, cases[i], Party.CUSTOMER)
        mid = f"<crash-{n}@customer.example>"
        out.append(Letter(mid, customer(i), to, make_mail(
            sender=customer(i), to=to, subject=f"Re: licence {i}",
            text=f"Attempt {n}: still not working.", message_id=mid)))
    return out


class Load:
    """Senders working through a shared queue, counting their 250s."""

    def __init__(self, port: int, letters: list[Letter]) -> None:
        self.port = port
        self.todo = list(reversed(letters))
        self.acked = 0
        self.cond = threading.Condition()
        self.tallies = [Tally() for _ in range(SENDERS)]
        self.deadline = time.monotonic() + BUDGET
        self.threads = [threading.Thread(target=self._send, args=(t,))
                        for t in self.tallies]

    def _send(self, tally: Tally) -> None:
        while True:
            with self.cond:
                if not self.todo:
                    return
                letter = self.todo.pop()
            ok = deliver(self.port, letter, tally, deadline=self.deadline)
            with self.cond:
                self.acked += ok
                self.cond.notify_all()

    def done(self) -> bool:
        return not self.todo and not any(t.is_alive() for t in self.threads)

    def wait_acks(self, count: int) -> bool:
        """Until ``count`` 250s in all (True) or the load is over."""
        with self.cond:
            return self.cond.wait_for(
                lambda: self.acked >= count or not self.todo, timeout=BUDGET)

    def total(self) -> Tally:
        total = Tally()
        for t in self.tallies:
            total.acked += t.acked
            total.attempts += t.attempts
            total.retried += t.retried
            total.duplicates += t.duplicates
            total.refusals += t.refusals
        return total


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_sigkill_under_load_loses_nothing_and_files_nothing_twice(
        runtime: Runtime, db_url: str, tmp_path: Path) -> None:
    """At least 20 SIGKILLs at moments chosen by a random count of 250s;
    afterwards each mail is one raw mail, one message, filed."""
    cases = open_cases(runtime, 8)
    letters = letters_for(runtime, cases)
    port = free_port()
    rng = random.Random(20260302)
    started = time.monotonic()
    load = Load(port, letters)
    server = Served(serve_env(runtime.settings, port), port,
                    tmp_path / "serve.log", "--no-deliver")
    kills = 0
    with server:
        for thread in load.threads:
            thread.start()
        while kills < KILLS and load.wait_acks(
                load.acked + rng.randint(2, 6)):
            if not load.todo:
                break
            time.sleep(rng.uniform(0, 0.03))  # a random moment in the load
            server.kill()
            kills += 1
            server.start()
        for thread in load.threads:
            thread.join(BUDGET)
        assert server.terminate() == 0, server.tail()
    took = time.monotonic() - started
    tally = load.total()

    raw = count_by(runtime, m.RawMail.idem_key)
    filed = message_counts(runtime)
    print(f"\ncrash test: {kills} SIGKILLs, {server.starts} starts, "
          f"{len(letters)} mails, {tally.acked} answered 250 "
          f"({tally.duplicates} as 'already filed' after a lost answer), "
          f"{tally.attempts} attempts, {tally.retried} retried, "
          f"{len(raw)} raw mails, {sum(filed.values())} messages filed, "
          f"{took:.1f}s")
    assert not tally.refusals
    assert kills >= KILLS
    assert tally.acked == len(letters)
    assert len(raw) == len(letters) and set(raw.values()) == {1}
    assert filed == {letter.message_id: 1 for letter in letters}
    assert count_by(runtime, m.RawMail.status) == {"filed": len(letters)}
    _assert_timelines_whole(runtime, cases)


def _assert_timelines_whole(rt: Runtime, cases: list[int]) -> None:
    """Every filed message has its timeline entry and its notification:
    the three were committed together or not at all."""
    with rt.sessions() as s:
        messages = s.scalar(select(func.count()).select_from(m.Message)
                            .where(m.Message.source == "email"))
        entries = s.scalar(select(func.count()).select_from(m.Event).where(
            m.Event.kind == "message", m.Event.party == "customer",
            m.Event.message_id.is_not(None)))
        notices = s.scalar(select(func.count()).select_from(m.Outbox).where(
            m.Outbox.template == "customer_reply"))
    # open_case wrote one customer message (from the API) per case.
    assert entries == messages + len(cases)
    assert notices == messages
