"""Settings for the durability tests: a listener on a free port, a low
retry limit for quarantined mail, and a gateway running in a thread of
its own so that the tests talk to it over real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from durability_kit import MAX_ATTEMPTS, gateway_thread

from casemail.config import Settings, load_settings
from casemail.runtime import Runtime


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return load_settings(
        None, data_dir=tmp_path / "var", database_url=db_url,
        signing_keys={"1": "durability-signing-key-0123456789"},
        max_processing_attempts=MAX_ATTEMPTS,
        listener={"host": "127.0.0.1", "port": 0})


@pytest.fixture
def smtp_port(runtime: Runtime) -> Iterator[int]:
    with gateway_thread(runtime) as port:
        yield port
