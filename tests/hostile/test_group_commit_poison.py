"""One mail whose data the database refuses does not fail its batch.

A reply whose From address is longer than the author column holds
(320 characters) made PostgreSQL raise a DataError when its message was
written, and every mail batched with it was answered 451: a refused
value is no "database away". Only that mail's savepoint is undone, and
the good mails that arrived at the same moment are filed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_serve import (
    GatewayThread,
    Letter,
    Pending,
    customer,
    held_database,
    make_mail,
    message_counts,
    open_cases,
    reply_address,
    wait_for,
)

from casemail.addresses import Party
from casemail.config import Settings, load_settings
from casemail.runtime import Runtime


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return load_settings(
        None, data_dir=tmp_path / "var", database_url=db_url,
        signing_keys={"1": "hostile-batch-key-0123456789abcdef"},
        listener={"host": "127.0.0.1", "port": 0})


@pytest.fixture
def gateway(runtime: Runtime) -> Iterator[GatewayThread]:
    gw = GatewayThread(runtime).start()
    try:
        yield gw
    finally:
        gw.stop()


def test_a_mail_the_database_rejects_does_not_fail_its_batch(
        runtime: Runtime, gateway: GatewayThread) -> None:
    cases = open_cases(runtime, 3)
    to = [reply_address(runtime, c, Party.CUSTOMER) for c in cases]
    first = Letter("<first@c.example>", customer(0), to[0], make_mail(
        sender=customer(0), to=to[0], subject="Re: key",
        text="First.", message_id="<first@c.example>"))
    long_from = "k" * 330 + "@customer.example"
    poison = Letter("<poison@c.example>", customer(1), to[1], make_mail(
        sender=long_from, to=to[1], subject="Re: key",
        text="Mine has a long address.", message_id="<poison@c.example>"))
    good = Letter("<good@c.example>", customer(2), to[2], make_mail(
        sender=customer(2), to=to[2], subject="Re: key",
        text="Nothing odd here.", message_id="<good@c.example>"))
    drain = gateway.gateway.drain
    with held_database(runtime) as held:
        a = Pending(gateway.port, first, whole=True)
        assert wait_for(held.waiting)  # the first batch is being written
        b = Pending(gateway.port, poison, whole=True)
        c = Pending(gateway.port, good, whole=True)
        assert wait_for(lambda: drain.in_flight == 3)
    answers = [a.finish(), b.finish(), c.finish()]

    assert answers[0][0] == 250, answers[0]
    # The good mail of the poisoned batch is filed and answered 250.
    assert answers[2][0] == 250, answers
    assert message_counts(runtime).get("<good@c.example>") == 1
    # The odd one gets a final answer of its own (filed, or quarantined
    # and kept), not a 451 its sender will repeat for days.
    assert answers[1][0] == 250, answers
