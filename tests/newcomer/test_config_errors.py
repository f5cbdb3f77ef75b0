"""A settings mistake says where it is (the file, or the CASEMAIL_
variable) and what is wanted, in words, without links to a library's
error catalogue."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., tuple[int, str, str]]


def test_bad_toml_names_the_file(tmp_path: Path, cli: Run) -> None:
    config = tmp_path / "casemail.toml"
    config.write_text('reply_domain = "reply.example.test\n[listener\n')
    code, _, err = cli(config, "store", "list")
    assert code == 1
    assert f"{config} is not valid TOML" in err
    assert "line 1" in err


def test_bad_value_names_the_variable(
        tmp_path: Path, cli: Run, config_for: Callable[[str], Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEMAIL_LISTENER__PORT", "twenty-five")
    code, _, err = cli(config_for(f"sqlite:///{tmp_path}/c.db"),
                       "store", "list")
    assert code == 1
    assert "listener.port" in err
    assert "CASEMAIL_LISTENER__PORT" in err
    assert "'twenty-five'" in err
    assert "pydantic.dev" not in err


def test_bad_signing_keys_variable_says_json(
        tmp_path: Path, cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "casemail.toml"
    config.write_text(f'data_dir = "{tmp_path / "var"}"\n')
    monkeypatch.setenv("CASEMAIL_SIGNING_KEYS", "not json")
    code, _, err = cli(config, "store", "list")
    assert code == 1
    assert "CASEMAIL_SIGNING_KEYS" in err
    assert "JSON" in err


def test_unknown_setting_points_at_the_example(
        tmp_path: Path, cli: Run) -> None:
    config = tmp_path / "casemail.toml"
    config.write_text(f'data_dir = "{tmp_path / "var"}"\nreply_domian = "x"\n')
    code, _, err = cli(config, "store", "list")
    assert code == 1
    assert "reply_domian" in err
    assert "casemail config --example" in err
