"""A store's sender is where notifications go when it has no team, and
the From of its mail: it must be a bare mail address."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

Run = Callable[..., tuple[int, str, str]]


def test_store_sender_must_be_a_mail_address(config: Path, cli: Run) -> None:
    code, _, err = cli(config, "store", "add", "acme", "--name", "Acme",
                       "--sender", "notanaddress")
    assert code == 1
    assert "not a mail address" in err
    code, out, _ = cli(config, "store", "list")
    assert code == 0 and "acme" not in out  # nothing half made


def test_store_set_sender_must_be_a_mail_address(
        config: Path, cli: Run) -> None:
    assert cli(config, "store", "add", "acme", "--name", "Acme",
               "--sender", "support@acme.example")[0] == 0
    code, _, err = cli(config, "store", "set", "acme", "--sender",
                       "Acme <support@acme.example")
    assert code == 1
    assert "not a mail address" in err
    _, out, _ = cli(config, "store", "show", "acme")
    assert "<support@acme.example>" in out
