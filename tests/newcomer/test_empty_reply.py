"""A reply with no words and no files is refused before it moves the case
or sends anyone a notification about nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

Run = Callable[..., tuple[int, str, str]]


def a_case(config: Path, cli: Run) -> str:
    """Case 1 in a store of its own; what 'case show 1' prints of it."""
    assert cli(config, "store", "add", "acme", "--name", "Acme",
               "--sender", "support@acme.example")[0] == 0
    code, _, err = cli(config, "case", "open", "--store", "acme", "--order",
                       "A-1", "--customer", "lena@cust.example",
                       "--subject", "Key", "--text", "Where is my key?")
    assert code == 0, err
    return cli(config, "case", "show", "1")[1]


def test_empty_reply_is_refused(config: Path, cli: Run) -> None:
    before = a_case(config, cli)
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


def test_a_reply_of_only_a_refused_file_is_refused(
        config: Path, cli: Run, tmp_path: Path) -> None:
    """No text and no file we keep is nothing to read either: refused with
    the file and the reason, the case as it was."""
    program = tmp_path / "KeyFix.exe"
    program.write_bytes(b"MZ\x90\x00\x03\x00\x00\x00" + bytes(200))
    before = a_case(config, cli)
    code, _, err = cli(config, "case", "reply", "1", "--text", "",
                       "--attach", str(program))
    assert code == 1
    assert "KeyFix.exe" in err and "no text" in err
    assert len(err.strip().splitlines()) == 1
    assert cli(config, "case", "show", "1")[1] == before
