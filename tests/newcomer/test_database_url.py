"""A database_url that cannot be used is one line and exit status 1, not
a driver's traceback; the password in it is never printed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., tuple[int, str, str]]


def test_unreachable_database_is_one_line(
        config_for: Callable[[str], Path], cli: Run) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused.
    config = config_for(
        "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/test")
    code, _, err = cli(config, "store", "list")
    assert code == 1
    assert "cannot reach the database" in err
    assert "database_url" in err
    assert "s3cret" not in err


@pytest.mark.parametrize("url", ["nonsense", "mysql://someone@127.0.0.1/db"])
def test_unusable_database_url_is_one_line(
        config_for: Callable[[str], Path], cli: Run, url: str) -> None:
    code, _, err = cli(config_for(url), "store", "list")
    assert code == 1
    assert err.startswith("casemail: database_url")
