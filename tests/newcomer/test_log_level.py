"""``log_level`` (or CASEMAIL_LOG_LEVEL) quiets every command, not only
``serve``: the migration chatter stays off a person's terminal."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., tuple[int, str, str]]


def test_log_level_setting_quiets_commands(
        config: Path, cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", logging.INFO)  # as main() leaves it
    monkeypatch.setenv("CASEMAIL_LOG_LEVEL", "WARNING")
    code, _, _ = cli(config, "store", "list")
    assert code == 0
    assert root.level == logging.WARNING
