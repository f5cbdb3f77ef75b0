"""A client guessing reply addresses is cut off: past
``max_invalid_recipients`` refused recipients in one session, it hears
``421 4.7.0`` and the connection closes (RFC 5321 3.8)."""

from __future__ import annotations

from collections.abc import Callable

from intake_support import Served, Wire, address, open_case

from casemail.config import ListenerSettings

CUT_OFF = "421 4.7.0 Too many invalid recipients, closing the connection"


def guess(number: int) -> str:
    return f"RCPT TO:<case+guess{number:04d}@reply.example.test>"


def test_the_limit_has_a_documented_default() -> None:
    field = ListenerSettings.model_fields["max_invalid_recipients"]
    assert field.default == 20
    assert field.description


def test_guessing_past_the_limit_closes_the_session(
        serve: Callable[..., Served]) -> None:
    served = serve(max_invalid_recipients=5)
    to = address(served.rt, open_case(served.rt))
    with Wire(served.smtp_port) as wire:
        wire.hello()
        wire.ask("MAIL FROM:<prober@attacker.example>")
        answers = [wire.ask(guess(n)).lines[0][:9] for n in range(3)]
        # A good recipient does not reset the count, nor does RSET, nor
        # mail that this server does not take at all.
        answers.append(wire.ask(f"RCPT TO:<{to}>").lines[0][:9])
        wire.ask("RSET")
        wire.ask("MAIL FROM:<prober@attacker.example>")
        answers.append(wire.ask("RCPT TO:<a@elsewhere.example>").lines[0][:9])
        answers.append(wire.ask(guess(3)).lines[0][:9])
        last = wire.ask(guess(4))
        closed = wire.closed_by_server()
    assert answers == ["550 5.1.1"] * 3 + ["250 2.1.5", "550 5.7.1",
                                           "550 5.1.1"]
    assert last.lines == [CUT_OFF]
    assert closed


def test_a_new_session_starts_counting_again(
        serve: Callable[..., Served]) -> None:
    served = serve(max_invalid_recipients=2)
    for _ in range(2):
        with Wire(served.smtp_port) as wire:
            wire.hello()
            wire.ask("MAIL FROM:<prober@attacker.example>")
            assert [wire.ask(guess(n)).code for n in range(2)] == [550, 550]
            assert wire.ask(guess(2)).lines == [CUT_OFF]
            assert wire.closed_by_server()
