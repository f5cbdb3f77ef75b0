"""A sweep killed half-way leaves nothing half-done, and the next pass
finishes the job: every case warned once, then closed once."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from casemail.cases.states import State

if TYPE_CHECKING:
    from conftest import Desk

DAY = dt.timedelta(days=1)
CHILD = Path(__file__).with_name("sweep_child.py")
CASES = 12
KILL_AT = 6  # dies inside the sixth case's transaction


def _killed_pass(desk: Desk) -> None:
    settings = desk.rt.settings
    done = subprocess.run(
        [sys.executable, str(CHILD), settings.db_url,
         str(settings.data_dir), desk.clock.now().isoformat(), str(KILL_AT)],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr


def _state(desk: Desk, ids: list[int]) -> list[tuple[int, int]]:
    return [desk.counts(i) for i in ids]


def test_killed_pass_then_a_second_one_acts_once_per_case(
        desk: Desk) -> None:
    start = desk.clock.now()
    ids = [desk.open_waiting(n=n) for n in range(CASES)]

    desk.at(start + 11 * DAY)
    _killed_pass(desk)
    # Five committed; the sixth died with its warning flushed but not
    # committed, so neither its mail nor its warned_at survived.
    assert sum(w for w, _ in _state(desk, ids)) == KILL_AT - 1
    assert sum(desk.case(i).warned_at is not None for i in ids) == KILL_AT - 1
    report = desk.sweep()
    assert len(report.warned) == CASES - KILL_AT + 1
    assert _state(desk, ids) == [(1, 0)] * CASES

    desk.at(start + 14 * DAY)
    _killed_pass(desk)
    closed = [i for i in ids if desk.case(i).state == State.CLOSED]
    assert len(closed) == KILL_AT - 1
    assert len(desk.sweep().closed) == CASES - KILL_AT + 1
    assert _state(desk, ids) == [(1, 1)] * CASES
    assert desk.sweep().closed == []
