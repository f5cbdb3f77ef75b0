"""``casemail serve`` on a port it cannot have says so in one line: a port
held by another program, a number no port has, an address not ours."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., tuple[int, str, str]]


def test_port_in_use_is_one_line(config: Path, cli: Run) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, _, err = cli(config, "serve", "--no-deliver", "--no-sweep",
                           "--port", str(port))
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "in use" in err


def test_address_not_ours_is_one_line(config: Path, cli: Run) -> None:
    # TEST-NET-1 (RFC 5737): never an address of this machine.
    code, _, err = cli(config, "serve", "--no-deliver", "--no-sweep",
                       "--host", "192.0.2.1", "--port", "0")
    assert code == 1
    assert "cannot listen on 192.0.2.1:0" in err


def test_port_out_of_range_is_refused(
        config: Path, cli: Run, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli(config, "serve", "--port", "99999")
    assert stop.value.code == 2
    assert "0 to 65535" in capsys.readouterr().err
