"""Intake fixtures: a gateway started with the listener settings a test
asks for.

The listener's behaviour does not depend on the database, so these tests
run on SQLite only (``db_url`` below narrows the shared fixture); the
answers that do depend on it are covered on both in tests/e2e.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from intake_support import Served

from casemail.clock import FrozenClock
from casemail.config import Settings
from casemail.runtime import build_runtime


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'casemail.db'}"


def with_listener(settings: Settings, **listener: Any) -> Settings:
    """``settings`` with a loopback listener on a free port, changed."""
    values = {"host": "127.0.0.1", "port": 0, **listener}
    return settings.model_copy(
        update={"listener": settings.listener.model_copy(update=values)})


@pytest.fixture
def serve(settings: Settings, clock: FrozenClock
          ) -> Iterator[Callable[..., Served]]:
    """``serve(**listener)``: a running gateway; stopped after the test."""
    with ExitStack() as stack:
        def start(**listener: Any) -> Served:
            rt = build_runtime(with_listener(settings, **listener),
                               clock=clock)
            stack.callback(rt.close)
            return stack.enter_context(Served(rt))
        yield start
