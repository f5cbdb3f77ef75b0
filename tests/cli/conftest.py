"""Set-up for the command-line tests: a settings file on a real
database (SQLite and PostgreSQL, from the shared ``db_url``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "casemail.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "var"}"\n'
        f'database_url = "{db_url}"\n'
        '[signing_keys]\n"1" = "cli-test-signing-key-0123456789"\n')
    return path
