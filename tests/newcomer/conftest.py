"""Set-up for the newcomer tests: a settings file, and the real
``casemail`` entry point run in-process as a person runs it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from casemail.cli.main import main

Run = Callable[..., tuple[int, str, str]]
KEY = '[signing_keys]\n"1" = "newcomer-test-signing-key-0123456789"\n'


@pytest.fixture
def config_for(tmp_path: Path) -> Callable[[str], Path]:
    """A settings file for one database URL (real, or really not there)."""
    def write(database_url: str) -> Path:
        path = tmp_path / "casemail.toml"
        path.write_text(f'data_dir = "{tmp_path / "var"}"\n'
                        f'database_url = "{database_url}"\n' + KEY)
        return path
    return write


@pytest.fixture
def config(config_for: Callable[[str], Path], db_url: str) -> Path:
    return config_for(db_url)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """``cli(config, *argv)``: exit status, stdout and stderr."""
    def run(config: Path, *argv: str) -> tuple[int, str, str]:
        code = main(["--config", str(config), *argv])
        out, err = capsys.readouterr()
        return code, out, err
    return run
