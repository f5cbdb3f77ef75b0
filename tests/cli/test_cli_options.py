"""The options every command shares (``--config``, ``-v``) may come
before the command or after it, as people type them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from casemail.cli.main import main


def stores(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return [store["slug"] for store in json.loads(out)]


def test_config_is_taken_before_or_after_the_command(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["store", "add", "northwind", "--sender",
                 "support@northwind-keys.example", "--config",
                 str(config)]) == 0
    capsys.readouterr()
    where = [["--config", str(config), "store", "list", "--json"],
             ["store", "--config", str(config), "list", "--json"],
             ["store", "list", "--json", "--config", str(config)]]
    for argv in where:
        assert stores(capsys, *argv) == ["northwind"], argv


def test_the_config_given_last_wins(
        config: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.toml"
    assert main(["--config", str(missing), "store", "list", "--config",
                 str(config)]) == 0
    assert main(["--config", str(config), "store", "list", "--config",
                 str(missing)]) == 1
    assert f"{missing} does not exist" in capsys.readouterr().err


def test_an_option_after_the_command_is_in_its_help(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    usage = capsys.readouterr().out
    assert "--config FILE" in usage and "--verbose" in usage
