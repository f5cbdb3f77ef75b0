"""What a sender writes cannot drive the terminal of the person who runs
``casemail case show``: control characters from mail are shown, not
obeyed.

A real ``casemail serve`` receives the mail over SMTP; ``case show``
then prints the case as text.
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

Run = Callable[..., tuple[int, str, str]]
ESCAPES = "\x1b[2J\x1b]0;owned\x07\x9b31m\u202e"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(config: Path) -> Iterator[int]:
    """``casemail serve`` on a port of its own, stopped with SIGTERM."""
    port = free_port()
    with subprocess.Popen(
            [sys.executable, "-m", "casemail.cli.main", "--config",
             str(config), "serve", "--no-deliver", "--no-sweep", "--port",
             str(port)],
            stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"}) as proc:
        try:
            # serve logs this line once it listens; EOF means it died.
            seen = []
            for line in proc.stderr:
                seen.append(line)
                if "casemail serving SMTP" in line:
                    break
            else:
                pytest.fail("serve did not start:\n" + "".join(seen))
            yield port
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)


def test_control_characters_from_mail_are_shown_not_obeyed(
        config: Path, cli: Run, served: int) -> None:
    assert cli(config, "store", "add", "acme", "--name", "Acme",
               "--sender", "support@acme.example")[0] == 0
    code, out, err = cli(config, "case", "open", "--store", "acme",
                         "--order", "A-1", "--customer", "lena@cust.example",
                         "--subject", "Key", "--text", "Where?", "--json")
    assert code == 0, err
    reply_address = json.loads(out)["reply_addresses"]["customer"]
    body = f"Still nothing {ESCAPES} here."
    mail = (f"From: Lena <lena@cust.example>\r\nTo: {reply_address}\r\n"
            f"Subject: again\r\nMessage-ID: <esc-1@cust.example>\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n")
    with smtplib.SMTP("127.0.0.1", served, timeout=30) as smtp:
        smtp.sendmail("lena@cust.example", [reply_address],
                      mail.encode("utf-8"))

    code, out, err = cli(config, "case", "show", "1")
    assert code == 0, err
    assert "Still nothing" in out
    for char in ESCAPES:
        if char not in "[]2J0;owned31m":
            assert char not in out, repr(char)
    assert "\\x1b[2J" in out  # shown, so a person sees what was sent
