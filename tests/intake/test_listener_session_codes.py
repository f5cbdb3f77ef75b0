"""Every reply of a whole session carries an enhanced status code, as
EHLO promises by listing ENHANCEDSTATUSCODES (RFC 2034 3) — the positive
replies too, not only the refusals."""

from __future__ import annotations

import re
from collections.abc import Callable

from intake_support import Reply, Served, Wire, address, mail, open_case

# The class digit of the code repeats the reply's first digit (RFC 3463 2).
ENHANCED = re.compile(r"^([245])\d\d[ -]\1\.\d{1,3}\.\d{1,3} ")


def session(wire: Wire, to: str) -> list[Reply]:
    """Every command a sending server or a curious person may use."""
    replies = [wire.ask(line) for line in (
        "HELP", "HELP MAIL", "NOOP", "VRFY <someone@reply.example.test>",
        "MAIL FROM:<ines.varga@customer.example>", f"RCPT TO:<{to}>",
        "RSET", "MAIL FROM:<>", f"RCPT TO:<{to}>")]
    assert wire.ask("DATA").code == 354  # RFC 3463 has no class 3
    wire.data(mail(to))
    replies.append(wire.reply())
    replies += [wire.ask("NOOP"), wire.ask("QUIT")]
    return replies


def test_every_reply_after_ehlo_carries_an_enhanced_code(
        serve: Callable[..., Served]) -> None:
    served = serve()
    to = address(served.rt, open_case(served.rt))
    with Wire(served.smtp_port) as wire:
        ehlo = wire.hello()
        replies = session(wire, to)
    assert "250-ENHANCEDSTATUSCODES" in ehlo.lines
    lines = [line for reply in replies for line in reply.lines]
    assert len(lines) == 12
    assert [ln for ln in lines if not ENHANCED.match(ln)] == []
    assert "250 2.1.0 Sender ok" in lines
    assert lines[-1] == "221 2.0.0 Bye"


def test_vrfy_says_where_an_address_is_checked(
        serve: Callable[..., Served]) -> None:
    served = serve()
    with Wire(served.smtp_port) as wire:
        wire.hello()
        answer = wire.ask("VRFY <case+guess@reply.example.test>")
    assert answer.lines == ["252 2.5.0 Cannot verify addresses; send the "
                            "mail and RCPT will tell"]


def test_lhlo_lists_enhanced_codes_and_lmtp_replies_carry_them(
        serve: Callable[..., Served]) -> None:
    served = serve(lmtp_port=0)
    with Wire(served.port_of(1)) as wire:
        lhlo = wire.hello(lmtp=True)
        answers = [wire.ask("MAIL FROM:<>"), wire.ask("RSET"),
                   wire.ask("NOOP"), wire.ask("QUIT")]
    assert "250-ENHANCEDSTATUSCODES" in lhlo.lines
    assert [a.lines[0] for a in answers] == [
        "250 2.1.0 Sender ok", "250 2.0.0 OK", "250 2.0.0 OK",
        "221 2.0.0 Bye"]


def test_pipelined_commands_are_answered_in_order(
        serve: Callable[..., Served]) -> None:
    """PIPELINING is listed, so a whole transaction sent in one write
    (RFC 2920 3.1) must be answered reply by reply, in order."""
    served = serve()
    to = address(served.rt, open_case(served.rt))
    with Wire(served.smtp_port) as wire:
        ehlo = wire.hello()
        wire.sock.sendall(
            b"MAIL FROM:<ines.varga@customer.example>\r\n"
            + f"RCPT TO:<{to}>\r\n".encode()
            + b"RCPT TO:<case+forged@reply.example.test>\r\nDATA\r\n")
        codes = [wire.reply().code for _ in range(4)]
        wire.data(mail(to))
        filed = wire.reply()
    assert "250-PIPELINING" in ehlo.lines
    assert codes == [250, 250, 550, 354]
    assert filed.lines == ["250 2.0.0 Message filed"]
