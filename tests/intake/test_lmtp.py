"""LMTP, over TCP and over a unix socket: after DATA one reply per
accepted recipient, in the order of their RCPT commands (RFC 2033 4.2) —
also when the whole message is refused at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from intake_support import Served, Wire, address, mail, messages, open_case

BASE = "case@reply.example.test"


def lmtp_transaction(wire: Wire, recipients: list[str],
                     raw: bytes) -> list[str]:
    """RCPT answers, then every reply after the final dot."""
    wire.hello(lmtp=True)
    assert wire.ask("MAIL FROM:<ines.varga@customer.example>").code == 250
    answers = [wire.ask(f"RCPT TO:<{rcpt}>").lines[0] for rcpt in recipients]
    accepted = sum(a.startswith("250") for a in answers)
    assert wire.ask("DATA").code == 354
    wire.data(raw)
    return answers + [wire.reply().lines[0] for _ in range(accepted)]


def test_each_recipient_gets_its_own_answer_over_tcp(
        serve: Callable[..., Served]) -> None:
    served = serve(lmtp_port=0)
    first, second = open_case(served.rt), open_case(served.rt)
    to_first, to_second = (address(served.rt, first),
                           address(served.rt, second))
    forged = to_first.replace("@", "x@")
    with Wire(served.port_of(1)) as wire:
        lines = lmtp_transaction(
            wire, [to_first, forged, BASE, to_second], mail(to_first))
    assert lines == [
        "250 2.1.5 Recipient ok",
        "550 5.1.1 No such case: this reply address is not valid",
        "250 2.1.5 Recipient ok",
        "250 2.1.5 Recipient ok",
        # to_first: filed
        "250 2.0.0 Message filed",
        # the base address: no token and no reference to mail of ours
        "550 5.1.1 This message belongs to no case: reply to a mail from "
        "the case instead",
        # to_second: filed too
        "250 2.0.0 Message filed",
    ]
    assert messages(served.rt, first)[-1] == "The key still does not work."
    assert messages(served.rt, second)[-1] == "The key still does not work."


def test_an_oversize_message_is_refused_once_per_recipient(
        serve: Callable[..., Served]) -> None:
    served = serve(lmtp_port=0, max_message_size=3000)
    first, second = open_case(served.rt), open_case(served.rt)
    recipients = [address(served.rt, first), address(served.rt, second)]
    with Wire(served.port_of(1)) as wire:
        lines = lmtp_transaction(wire, recipients,
                                 mail(recipients[0], text="w" * 4000))
        # Had the server answered once, this NOOP's reply would be the
        # second of the two above; the session must still be in step.
        after = wire.ask("NOOP")
    refusal = ("552 5.3.4 Message is larger than the 3000 bytes this "
               "server accepts")
    assert lines[2:] == [refusal, refusal]
    assert after.lines == ["250 2.0.0 OK"]


def test_lmtp_over_a_unix_socket_files_the_mail(
        serve: Callable[..., Served], tmp_path: Path) -> None:
    sock = tmp_path / "lmtp.sock"
    served = serve(lmtp_socket=sock)
    case_id = open_case(served.rt)
    to = address(served.rt, case_id)
    with Wire(path=sock) as wire:
        lines = lmtp_transaction(wire, [to], mail(to))
    assert lines == ["250 2.1.5 Recipient ok", "250 2.0.0 Message filed"]
    assert messages(served.rt, case_id)[-1] == "The key still does not work."


def test_lmtp_refuses_the_smtp_greeting(serve: Callable[..., Served]) -> None:
    served = serve(lmtp_port=0)
    with Wire(served.port_of(1)) as wire:
        assert wire.reply().code == 220
        answer = wire.ask("EHLO client.example")
    assert answer.lines == ['500 5.5.1 Command "EHLO" not recognized']
