"""SIGTERM under load: ``casemail serve`` stops taking mail, answers the
mail in flight, and exits 0; nothing is filed that was not answered 250,
and nothing answered 250 is missing."""

from __future__ import annotations

import smtplib
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from durability_kit import (
    Letter,
    Served,
    customer,
    free_port,
    make_mail,
    message_counts,
    open_cases,
    reply_address,
    send_once,
    serve_env,
)

from casemail.addresses import Party
from casemail.runtime import Runtime

SENDERS = 8
EACH = 40


class Senders:
    """Each sends its letters once, in order, and notes every answer."""

    def __init__(self, port: int, letters: list[Letter]) -> None:
        self.port = port
        self.answers: dict[str, str] = {}
        self.cond = threading.Condition()
        self.threads = [threading.Thread(target=self._send,
                                         args=(letters[k::SENDERS],))
                        for k in range(SENDERS)]

    def _send(self, mine: list[Letter]) -> None:
        for letter in mine:
            try:
                code, _ = send_once(self.port, letter)
                answer = str(code)
            except ConnectionRefusedError:
                return  # the listener is closed: the rest stay queued
            except (OSError, smtplib.SMTPException):
                answer = "cut off"
            with self.cond:
                self.answers[letter.message_id] = answer
                self.cond.notify_all()

    def acked(self) -> set[str]:
        return {k for k, v in self.answers.items() if v == "250"}


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_sigterm_finishes_the_mail_in_flight_and_exits(
        runtime: Runtime, db_url: str, tmp_path: Path) -> None:
    """Stopped after 30 answers: what was filed is exactly what was
    answered 250, and the process exits 0 within the drain time."""
    cases = open_cases(runtime, 4)
    letters = []
    for n in range(SENDERS * EACH):
        to = reply_address(runtime, cases[n % 4], Party.CUSTOMER)
        mid = f"<stop-{n}@customer.example>"
        letters.append(Letter(mid, customer(n % 4), to, make_mail(
            sender=customer(n % 4), to=to, subject="Re: licence",
            text=f"Message {n}.", message_id=mid)))
    port = free_port()
    server = Served(serve_env(runtime.settings, port), port,
                    tmp_path / "serve.log", "--no-deliver")
    senders = Senders(port, letters)
    with server:
        for thread in senders.threads:
            thread.start()
        with senders.cond:
            senders.cond.wait_for(lambda: len(senders.answers) >= 30, 30)
        asked = time.monotonic()
        code = server.terminate()
        stopped = time.monotonic() - asked
    for thread in senders.threads:
        thread.join(30)

    answers = Counter(senders.answers.values())
    filed = set(message_counts(runtime)) & {x.message_id for x in letters}
    print(f"\nshutdown: exit {code} after {stopped:.2f}s; answers "
          f"{dict(answers)}; {len(filed)} filed; "
          f"{len(letters) - len(senders.answers)} never sent")
    assert code == 0, server.tail()
    assert filed == senders.acked()
    assert len(letters) > len(senders.answers)  # it did stop taking mail
