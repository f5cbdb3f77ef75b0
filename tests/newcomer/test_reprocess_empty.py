"""``casemail reprocess --all`` with nothing in the quarantine is not a
mistake of the operator's: it says so and succeeds (cron runs it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

Run = Callable[..., tuple[int, str, str]]


def test_reprocess_all_on_an_empty_quarantine_succeeds(
        config: Path, cli: Run) -> None:
    code, out, err = cli(config, "reprocess", "--all")
    assert (code, err) == (0, "")
    assert out == "The quarantine holds nothing to reprocess.\n"


def test_reprocess_without_ids_or_all_says_what_to_give(
        config: Path, cli: Run) -> None:
    code, out, err = cli(config, "reprocess")
    assert (code, out) == (1, "")
    assert err == "casemail: name the mail to reprocess, or --all\n"
