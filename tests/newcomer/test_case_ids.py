"""A case id no database column can hold names no case: the same one-line
answer as any unknown id, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

Run = Callable[..., tuple[int, str, str]]

HUGE = "99999999999999999999999"


def test_case_id_too_large_for_the_database(config: Path, cli: Run) -> None:
    code, _, err = cli(config, "case", "show", HUGE)
    assert code == 1
    assert err.strip() == f"casemail: no case {HUGE}"
    code, _, err = cli(config, "case", "read", HUGE)
    assert code == 1
    assert err.strip() == f"casemail: no case {HUGE}"
