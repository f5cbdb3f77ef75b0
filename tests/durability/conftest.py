"""Settings for the durability tests: a listener on a free port, a low
retry limit for quarantined mail, and a gateway running in a thread of
its own so that the tests talk to it over real sockets."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from durability_kit import MAX_ATTEMPTS

from casemail.config import Settings, load_settings
from casemail.runtime import Runtime


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return load_settings(
        None, data_dir=tmp_path / "var", database_url=db_url,
        signing_keys={"1": "durability-signing-key-0123456789"},
        max_processing_attempts=MAX_ATTEMPTS,
        listener={"host": "127.0.0.1", "port": 0})


@contextmanager
def gateway_thread(rt: Runtime) -> Iterator[int]:
    """A gateway (listener only) in its own event loop; its SMTP port."""
    from casemail.gateway import Gateway

    loop = asyncio.new_event_loop()
    gateway = Gateway(rt, deliver=False, sweep=False)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(gateway.start(), loop).result(10)
    try:
        yield gateway.smtp_port
    finally:
        asyncio.run_coroutine_threadsafe(gateway.stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def smtp_port(runtime: Runtime) -> Iterator[int]:
    with gateway_thread(runtime) as port:
        yield port
