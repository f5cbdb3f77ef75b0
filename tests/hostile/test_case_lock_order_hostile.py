"""Two gateways on one PostgreSQL database filing mail for the same
cases: a deadlock between their transactions.

Each gateway files the mails that arrive together in one transaction
(``intake.batching``), and one mail to several recipients is filed
recipient by recipient in one transaction too; each locks its cases in
the order the mails arrived (RCPT order within a mail). Two such
transactions that take the same cases in other orders wait for each
other: PostgreSQL fails one as the deadlock victim, the pipeline takes
that for "database away", and every mail of that transaction is
answered 451.

What must hold (and does not): both answered 250 at once, each mail
filed once in each case, no OperationalError in the log.
"""

from __future__ import annotations

import smtplib
import threading
from collections import Counter
from pathlib import Path

import pytest
from hostile_serve import (
    Served,
    customer,
    free_port,
    make_mail,
    message_counts,
    open_cases,
    reply_address,
    serve_env,
    wait_for,
)
from sqlalchemy import select, text

from casemail.addresses import Party
from casemail.db import models as m
from casemail.runtime import Runtime


def _waiting(runtime: Runtime, names: list[str]) -> int:
    """How many connections named ``names`` wait for a lock."""
    with runtime.engine.connect() as conn:
        return int(conn.execute(text(
            "select count(*) from pg_stat_activity where "
            "application_name = any(:names) and wait_event_type = 'Lock'"),
            {"names": names}).scalar_one())


def _named(url: str, name: str) -> str:
    return url + ("&" if "?" in url else "?") + f"application_name={name}"


class _ToMany:
    """One SMTP transaction to several recipients, the data and the
    final dot sent, the answer read later."""

    def __init__(self, port: int, sender: str, recipients: list[str],
                 data: bytes) -> None:
        self.client = smtplib.SMTP("127.0.0.1", port, timeout=60)
        self.client.ehlo("mx.customer.example")
        assert self.client.mail(sender)[0] == 250
        for rcpt in recipients:
            assert self.client.rcpt(rcpt)[0] == 250
        self.client.putcmd("data")
        assert self.client.getreply()[0] == 354
        self.client.send(data + b".\r\n")

    def answer(self) -> tuple[int, str]:
        try:
            code, text = self.client.getreply()
            return code, text.decode()
        finally:
            self.client.close()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_two_serve_processes_filing_the_same_cases_in_other_orders(
        runtime: Runtime, tmp_path: Path) -> None:
    """Two ``casemail serve`` on one database. A mail server hands one
    of them a mail for cases A, C and B (one transaction, in RCPT
    order), the other a mail for B, C and A, while C is busy with a
    change of its own (a merchant's API reply, the sweep). Each holds
    its first case and waits for C; once C is free, each reaches the
    case the other holds."""
    a, b, c = open_cases(runtime, 3)
    names = ["hostile_serve_one", "hostile_serve_two"]
    ports = [free_port(), free_port()]
    servers = [Served(serve_env(
        runtime.settings, port,
        CASEMAIL_DATABASE_URL=_named(runtime.settings.db_url, name)),
        port, tmp_path / f"{name}.log", "--no-deliver")
        for name, port in zip(names, ports)]

    def to(case: int) -> str:
        return reply_address(runtime, case, Party.CUSTOMER)

    mails = []
    for k, order in enumerate([(a, c, b), (b, c, a)]):
        mid = f"<order-{k}@customer.example>"
        mails.append((ports[k], [to(x) for x in order], make_mail(
            sender=customer(k), to=to(order[0]), subject="Re: licence",
            text=f"Order {k}: same words to all three.", message_id=mid)))
    with servers[0], servers[1]:
        with runtime.engine.connect() as busy:
            busy.execute(text("select id from cases where id = :c "
                              "for no key update"), {"c": c})
            sent = [_ToMany(port, customer(k), rcpts, data)
                    for k, (port, rcpts, data) in enumerate(mails)]
            assert wait_for(lambda: _waiting(runtime, names) == 2), \
                "".join(s.tail() for s in servers)
            busy.commit()
        answers = [x.answer() for x in sent]
        logs = "".join(s.tail() for s in servers)
    assert answers == [(250, "2.0.0 Message filed")] * 2, logs
    assert "OperationalError" not in logs, logs
    assert message_counts(runtime) == {"<order-0@customer.example>": 3,
                                       "<order-1@customer.example>": 3}
    with runtime.sessions() as s:
        assert Counter(s.scalars(select(m.RawMail.status))) == {"filed": 6}


# -- the same in two pipelines: batches of separate mails ------------------


def _runtime_named(runtime: Runtime, name: str) -> Runtime:
    """A second runtime on the same database and files, as a second
    gateway process has; its connections carry ``name``."""
    from casemail.runtime import build_runtime

    settings = runtime.settings.model_copy(update={
        "database_url": _named(runtime.settings.db_url, name)})
    return build_runtime(settings, clock=runtime.clock, migrate_db=False)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_two_batches_over_the_same_cases_in_other_orders_both_file(
        runtime: Runtime) -> None:
    """Gateway one files [A, C, B] in one transaction, gateway two
    [B, C', A] (the order the mails finished arriving in each). While C
    is busy elsewhere each holds its first case and waits; once C is
    free they go on, and each reaches the case the other holds."""
    from casemail.intake.pipeline import Filing, Pipeline
    from casemail.intake.rawstore import Envelope

    a, b, c = open_cases(runtime, 3)
    names = ["hostile_batch_one", "hostile_batch_two"]
    runtimes = [_runtime_named(runtime, n) for n in names]
    try:
        pipelines = [Pipeline(rt) for rt in runtimes]

        def filing(p: Pipeline, case: int, n: int, tag: str) -> Filing:
            to = reply_address(runtime, case, Party.CUSTOMER)
            raw = make_mail(sender=customer(n), to=to, subject="Re: key",
                            text=f"Still broken ({tag}).",
                            message_id=f"<{tag}@customer.example>")
            return Filing(raw, Envelope(customer(n), to), p.route(to),
                          p.read(raw, customer(n)))

        batches = [
            [filing(pipelines[0], a, 0, "one-a"),
             filing(pipelines[0], c, 2, "one-c"),
             filing(pipelines[0], b, 1, "one-b")],
            [filing(pipelines[1], b, 1, "two-b"),
             filing(pipelines[1], c, 2, "two-c"),
             filing(pipelines[1], a, 0, "two-a")],
        ]
        results: list[list[str]] = [[], []]

        def run(k: int) -> None:
            results[k] = [o.reply for o in
                          pipelines[k].process_batch(batches[k])]

        threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
        # Case C is busy with a change of its own (a merchant's reply
        # through the API, the sweep).
        with runtime.engine.connect() as busy:
            busy.execute(text("select id from cases where id = :c "
                              "for no key update"), {"c": c})
            for t in threads:
                t.start()
            assert wait_for(lambda: _waiting(runtime, names) == 2)
            busy.commit()
        for t in threads:
            t.join(60)
    finally:
        for rt in runtimes:
            rt.close()

    filed = "250 2.0.0 Message filed"
    assert results == [[filed] * 3, [filed] * 3]
    assert set(message_counts(runtime)) == {
        f"<{t}@customer.example>" for t in
        ["one-a", "one-b", "one-c", "two-a", "two-b", "two-c"]}
