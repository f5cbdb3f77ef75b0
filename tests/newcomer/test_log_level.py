"""``log_level`` (or CASEMAIL_LOG_LEVEL) quiets every command, not only
``serve``: the migration chatter stays off a person's terminal."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., tuple[int, str, str]]


@pytest.mark.parametrize("command", [
    ["store", "list"], ["case", "list"], ["sweep"], ["sweep", "--dry-run"],
    ["quarantine", "list"], ["postmaster"], ["config"]])
def test_log_level_setting_quiets_commands(
        config: Path, cli: Run, monkeypatch: pytest.MonkeyPatch,
        command: list[str]) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", logging.INFO)  # as main() leaves it
    monkeypatch.setenv("CASEMAIL_LOG_LEVEL", "WARNING")
    code, _, err = cli(config, *command)
    assert code == 0, err
    assert root.level == logging.WARNING


def test_verbose_wins_over_the_log_level_setting(
        config: Path, cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """-v asks for debug detail for this one run, whatever the settings."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", logging.INFO)
    monkeypatch.setenv("CASEMAIL_LOG_LEVEL", "ERROR")
    code, _, err = cli(config, "-v", "sweep")
    assert code == 0, err
    assert root.level == logging.DEBUG
