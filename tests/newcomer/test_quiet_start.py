"""A command says nothing about the database schema unless it changes
it, and ``log_level`` silences the start-up warnings too.

Run as a person runs them: ``casemail`` in a process of its own, its
stderr read as the terminal would show it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

KEY = '[signing_keys]\n"1" = "quiet-start-signing-key-0123456789"\n'


def casemail(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "casemail.cli.main", "--config", str(config),
         *argv], capture_output=True, text=True, timeout=60)


def test_only_a_migration_that_runs_is_logged(config: Path) -> None:
    """The first command creates the schema and says so; the next one,
    with nothing to migrate, prints only its answer."""
    first = casemail(config, "store", "list")
    assert first.returncode == 0, first.stderr
    assert "creating the database schema" in first.stderr
    again = casemail(config, "store", "list")
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""
    assert again.stdout.startswith("no stores yet")


def test_log_level_error_silences_start_up_warnings(
        tmp_path: Path, db_url: str) -> None:
    """No signing key and a listener open to the network are worth a
    warning, but not when the operator asked for errors only."""
    config = tmp_path / "casemail.toml"
    config.write_text(f'data_dir = "{tmp_path / "var"}"\n'
                      f'database_url = "{db_url}"\nlog_level = "ERROR"\n'
                      '[listener]\nhost = "0.0.0.0"\n')
    for command in (["sweep"], ["store", "list"], ["config"]):
        done = casemail(config, *command)
        assert done.returncode == 0, done.stderr
        assert done.stderr == "", command
    assert (tmp_path / "var" / "signing.key").exists()


def test_warnings_still_show_at_the_default_level(tmp_path: Path,
                                                  db_url: str) -> None:
    config = tmp_path / "casemail.toml"
    config.write_text(f'data_dir = "{tmp_path / "var"}"\n'
                      f'database_url = "{db_url}"\n'
                      '[listener]\nhost = "0.0.0.0"\n' + KEY)
    done = casemail(config, "sweep")
    assert "listener on 0.0.0.0 without STARTTLS" in done.stderr
