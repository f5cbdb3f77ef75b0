"""A reply with no words and no files is refused before it moves the case
or sends anyone a notification about nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

Run = Callable[..., tuple[int, str, str]]


def test_empty_reply_is_refused(config: Path, cli: Run) -> None:
    assert cli(config, "store", "add", "acme", "--name", "Acme",
               "--sender", "support@acme.example")[0] == 0
    code, _, err = cli(config, "case", "open", "--store", "acme", "--order",
                       "A-1", "--customer", "lena@cust.example",
                       "--subject", "Key", "--text", "Where is my key?")
    assert code == 0, err
    before = cli(config, "case", "show", "1")[1]
    code, _, err = cli(config, "case", "reply", "1", "--as", "staff",
                       "--text", "  ")
    assert code == 1
    assert "--text" in err
    assert cli(config, "case", "show", "1")[1] == before


def test_empty_case_is_refused(config: Path, cli: Run) -> None:
    assert cli(config, "store", "add", "acme", "--name", "Acme",
               "--sender", "support@acme.example")[0] == 0
    code, _, err = cli(config, "case", "open", "--store", "acme", "--order",
                       "A-1", "--customer", "lena@cust.example",
                       "--subject", "Key", "--text", "")
    assert code == 1
    assert "--text" in err
    assert cli(config, "case", "list")[1].strip() == "no cases"
