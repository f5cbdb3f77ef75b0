"""``casemail sweep`` on the command line: a real pass, a dry run with
its dates, and a look ahead that changes nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from casemail.cli.main import main
from casemail.clock import SystemClock

if TYPE_CHECKING:
    from conftest import Desk

DAY = dt.timedelta(days=1)


@pytest.fixture
def config(desk: Desk, tmp_path: Path) -> str:
    settings = desk.rt.settings
    path = tmp_path / "casemail.toml"
    path.write_text(
        f'data_dir = "{settings.data_dir}"\n'
        f'database_url = "{settings.db_url}"\n'
        "[signing_keys]\n"
        f'1 = "{settings.signing_keys["1"]}"\n')
    return str(path)


def test_dry_run_as_of_lists_steps_with_dates(
        desk: Desk, config: str, capsys: pytest.CaptureFixture[str]) -> None:
    start = desk.clock.now()
    case_id = desk.open_waiting()
    as_of = (start + 11 * DAY).isoformat()

    assert main(["--config", config, "sweep", "--dry-run",
                 "--as-of", as_of]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"case {case_id} (lumen): would warn at 2026-01-16 "
                      "09:00 UTC, closes 2026-01-19 09:00 UTC")
    assert out[-1].endswith("would warn 1, would close 0")
    assert desk.counts(case_id) == (0, 0)

    # Warned on the day: the closing falls due three days on.
    desk.at(start + 11 * DAY).sweep()
    assert main(["--config", config, "sweep", "--dry-run", "--as-of",
                 (start + 15 * DAY).isoformat()]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"case {case_id} (lumen): would close at ")
    assert out[0].endswith("(due 2026-01-19 09:00 UTC)")
    assert desk.counts(case_id) == (1, 0)


def test_as_of_without_dry_run_is_refused(
        desk: Desk, config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", config, "sweep", "--as-of", "+7d"]) == 2
    assert "--as-of needs --dry-run" in capsys.readouterr().err


def test_real_pass_warns_at_the_clock_time(
        desk: Desk, config: str, capsys: pytest.CaptureFixture[str]) -> None:
    # The command runs on the system clock: make the case twelve days old
    # by that clock, not by sleeping.
    desk.at(SystemClock().now() - 12 * DAY)
    case_id = desk.open_waiting()

    assert main(["--config", config, "sweep"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"case {case_id} (lumen): warned at ")
    assert out[-1].endswith("warned 1, closed 0, no longer due 0, failed 0")
    assert desk.counts(case_id) == (1, 0)

    # Looking a week ahead shows the closing the next passes will do.
    assert main(["--config", config, "sweep", "--dry-run",
                 "--as-of", "+7d"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"case {case_id} (lumen): would close at ")


def test_bad_as_of_is_a_usage_error(config: str) -> None:
    with pytest.raises(SystemExit):
        main(["--config", config, "sweep", "--dry-run", "--as-of", "soon"])
