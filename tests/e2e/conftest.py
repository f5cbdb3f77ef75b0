"""End-to-end set-up: casemail's gateway on a loopback port, a receiving
SMTP server standing in for the relay, and a real database (SQLite and
PostgreSQL, from the shared ``db_url`` fixture).

The gateway runs in its own thread with its own event loop, as in
``casemail serve``; the tests talk to it with a plain SMTP client. Outbound
mail is delivered by running the delivery worker's passes until the
outbox is empty, so no test waits on a timer.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_gateway import GatewayThread

from casemail.clock import FrozenClock
from casemail.config import Settings, load_settings
from casemail.outbound.sink import MaildirSink
from casemail.runtime import Runtime, build_runtime


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MaildirSink]:
    with MaildirSink(tmp_path / "sent-mail") as running:
        yield running


@pytest.fixture
def make_settings(tmp_path: Path, db_url: str,
                  sink: MaildirSink) -> Callable[..., Settings]:
    def make(**listener: Any) -> Settings:
        return load_settings(
            None, data_dir=tmp_path / "var", database_url=db_url,
            signing_keys={"1": "e2e-signing-key-0123456789abcdef"},
            listener={"host": "127.0.0.1", "port": 0, **listener},
            relay={"host": "127.0.0.1", "port": sink.port})
    return make


@pytest.fixture
def e2e_runtime(make_settings: Callable[..., Settings]) -> Iterator[Runtime]:
    rt = build_runtime(make_settings(), clock=FrozenClock())
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture
def gateway(e2e_runtime: Runtime) -> Iterator[GatewayThread]:
    running = GatewayThread(e2e_runtime).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def smtp(gateway: GatewayThread) -> Iterator[smtplib.SMTP]:
    """A plain SMTP client, greeted, talking to the gateway."""
    client = smtplib.SMTP("127.0.0.1", gateway.port, timeout=30)
    client.ehlo("test.client")
    yield client
    client.close()
