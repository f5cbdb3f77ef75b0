"""Two sweeps at the same moment, each with its own engine on the same
database (as two processes would be), warn once and close once."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import pytest

from casemail.runtime import Runtime, build_runtime
from casemail.sweep import SweepReport, _handle, find_planned, run_sweep

if TYPE_CHECKING:
    from conftest import Desk

DAY = dt.timedelta(days=1)
CASES = 30
T = TypeVar("T")


@pytest.fixture
def twins(desk: Desk) -> Iterator[tuple[Runtime, Runtime]]:
    one = build_runtime(desk.rt.settings, clock=desk.clock, migrate_db=False)
    two = build_runtime(desk.rt.settings, clock=desk.clock, migrate_db=False)
    try:
        yield one, two
    finally:
        one.close()
        two.close()


def _both(twins: tuple[Runtime, Runtime],
          work: Callable[[Runtime, threading.Barrier], T]) -> list[T]:
    barrier = threading.Barrier(2, timeout=60)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(work, rt, barrier) for rt in twins]
        return [f.result(timeout=120) for f in futures]


def _whole_pass(rt: Runtime, barrier: threading.Barrier) -> SweepReport:
    barrier.wait()
    return run_sweep(rt)


def _overlapping_pass(rt: Runtime,
                      barrier: threading.Barrier) -> SweepReport:
    """Both list every case as due before either acts on one."""
    now = rt.clock.now()
    report = SweepReport(as_of=now)
    report.planned = find_planned(rt, now, now, None)
    barrier.wait()
    for step in report.planned:
        _handle(rt, step.case_id, report)
    return report


def test_two_whole_passes_at_once(desk: Desk,
                                  twins: tuple[Runtime, Runtime]) -> None:
    start = desk.clock.now()
    ids = [desk.open_waiting(n=n) for n in range(CASES)]
    desk.at(start + 11 * DAY)
    a, b = _both(twins, _whole_pass)
    assert sorted(a.warned + b.warned) == ids
    desk.at(start + 14 * DAY)
    a, b = _both(twins, _whole_pass)
    assert sorted(a.closed + b.closed) == ids
    assert [desk.counts(i) for i in ids] == [(1, 1)] * CASES
    assert a.failed == b.failed == []


def test_two_passes_that_listed_the_same_cases(
        desk: Desk, twins: tuple[Runtime, Runtime]) -> None:
    start = desk.clock.now()
    ids = [desk.open_waiting(n=n) for n in range(CASES)]

    desk.at(start + 11 * DAY)
    a, b = _both(twins, _overlapping_pass)
    assert len(a.planned) == len(b.planned) == CASES
    assert sorted(a.warned + b.warned) == ids
    assert sorted(a.skipped + b.skipped) == ids  # the loser of each lock

    desk.at(start + 14 * DAY)
    a, b = _both(twins, _overlapping_pass)
    assert sorted(a.closed + b.closed) == ids
    assert sorted(a.skipped + b.skipped) == ids
    assert [desk.counts(i) for i in ids] == [(1, 1)] * CASES
    assert a.failed == b.failed == []
