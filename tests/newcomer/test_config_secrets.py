"""``casemail config`` shows the settings in force, for a person to read
or paste into a ticket: never a secret in it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., tuple[int, str, str]]


def test_config_shows_no_password_and_no_key(
        config_for: Callable[[str], Path], cli: Run, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_for(
        "postgresql+psycopg://casemail:Db-Secret-41@127.0.0.1:5432/test")
    (tmp_path / "cert.pem").write_text("")
    (tmp_path / "key.pem").write_text("")
    monkeypatch.setenv("CASEMAIL_LISTENER__AUTH_USERS",
                       '{"relay": "Auth-Secret-42"}')
    monkeypatch.setenv("CASEMAIL_LISTENER__TLS_CERT",
                       str(tmp_path / "cert.pem"))
    monkeypatch.setenv("CASEMAIL_LISTENER__TLS_KEY", str(tmp_path / "key.pem"))
    monkeypatch.setenv("CASEMAIL_RELAY__PASSWORD", "Relay-Secret-43")

    code, out, err = cli(config, "config")

    assert code == 0, err
    for secret in ("Db-Secret-41", "Auth-Secret-42", "Relay-Secret-43",
                   "newcomer-test-signing-key"):
        assert secret not in out, secret
    assert "casemail:***@127.0.0.1:5432/test" in out
    assert "'relay': '***'" in out
