"""The benchmark's load client against a real bare listener: what it
counts and what it leaves out of the measured window."""

from __future__ import annotations

import asyncio
from pathlib import Path

from casemail.bench.client import run_load
from casemail.bench.mails import Target, templates
from casemail.bench.process import ServerProcess


def _mails() -> list:
    target = Target(1, "ann@customer.example", "reply+1@support.example",
                    "<first@support.example>")
    return templates([target], "2k")


def test_warm_up_load_is_sent_before_the_window_and_not_counted(
        tmp_path: Path) -> None:
    opened: list[int] = []
    with ServerProcess("ceiling", log_file=tmp_path / "ceiling.log") \
            as server:
        load = asyncio.run(run_load(
            server.port, _mails(), sessions=2, seconds=0.3,
            warm_seconds=0.5, on_start=lambda: opened.append(1)))
    assert opened, "the window was opened"
    assert load.sent > 0 and load.failed == 0
    assert len(load.latencies) == load.sent
    # Half a second of the same load came first: far more than the one
    # mail per session that only opens the connection, and none of it is
    # in the counted mails or their latencies.
    warm = load.accepted - load.sent
    assert warm > 2 + 2 * 10, (load.accepted, load.sent)


def test_without_warm_up_time_each_session_sends_one_mail_first(
        tmp_path: Path) -> None:
    with ServerProcess("ceiling", log_file=tmp_path / "ceiling.log") \
            as server:
        load = asyncio.run(run_load(server.port, _mails(), sessions=3,
                                    seconds=0.2))
    # One per session before the window, and at most one per session
    # answered after it closed.
    assert 3 <= load.accepted - load.sent <= 6
