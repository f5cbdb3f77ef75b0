"""The listener's refusals over a real session: each with an enhanced
status code (RFC 3463) and a reason a person can act on — never
aiosmtpd's own developer wording."""

from __future__ import annotations

import re
from collections.abc import Callable

from intake_support import (
    Served,
    Wire,
    address,
    mail,
    messages,
    open_case,
    send,
)

ENHANCED = re.compile(r"^[245]\d\d [245]\.\d{1,3}\.\d{1,3} [A-Z]")


def test_a_good_reply_is_filed_and_answered_250(
        serve: Callable[..., Served]) -> None:
    served = serve()
    case_id = open_case(served.rt)
    to = address(served.rt, case_id)
    answer = send(served.smtp_port, to, mail(to))
    assert answer.lines == ["250 2.0.0 Message filed"]
    assert messages(served.rt, case_id)[-1] == "The key still does not work."


def test_size_is_advertised_and_a_declared_oversize_is_refused_at_mail(
        serve: Callable[..., Served]) -> None:
    served = serve(max_message_size=5000)
    with Wire(served.smtp_port) as wire:
        ehlo = wire.hello()
        answer = wire.ask("MAIL FROM:<a@customer.example> SIZE=5001")
    assert "250-SIZE 5000" in ehlo.lines
    assert answer.lines == [
        "552 5.3.4 Message size exceeds the 5000 bytes this server accepts"]


def test_an_oversize_message_is_refused_with_552_and_kept_nowhere(
        serve: Callable[..., Served]) -> None:
    served = serve(max_message_size=5000)
    case_id = open_case(served.rt)
    to = address(served.rt, case_id)
    with Wire(served.smtp_port) as wire:
        wire.hello()
        wire.ask("MAIL FROM:<ines.varga@customer.example>")
        wire.ask(f"RCPT TO:<{to}>")
        wire.ask("DATA")
        wire.data(mail(to, text=("y" * 70 + "\r\n") * 80))
        answer = wire.reply()
        # The session goes on: the next transaction is answered.
        after = wire.ask("RSET")
    assert answer.lines == [
        "552 5.3.4 Message is larger than the 5000 bytes this server accepts"]
    assert after.code == 250
    assert messages(served.rt, case_id) == ["My key never came."]


def test_a_line_over_the_limit_is_refused_with_a_reason(
        serve: Callable[..., Served]) -> None:
    served = serve(max_line_length=2000)
    case_id = open_case(served.rt)
    to = address(served.rt, case_id)
    answer = send(served.smtp_port, to, mail(to, text="z" * 2500))
    assert answer.lines == [
        "554 5.6.0 A line of the message is longer than 2000 bytes; "
        "send it with a transfer encoding"]
    assert messages(served.rt, case_id) == ["My key never came."]


def test_a_header_section_over_the_limit_never_reaches_the_pipeline(
        serve: Callable[..., Served]) -> None:
    served = serve(max_header_size=1024)
    case_id = open_case(served.rt)
    to = address(served.rt, case_id)
    many = "".join(f"X-Trace-{n}: hop {n} of a long forwarding chain\r\n"
                   for n in range(40))
    answer = send(served.smtp_port, to, mail(to, extra=many))
    assert answer.lines == [
        "552 5.3.4 The header section is larger than the 1024 bytes this "
        "server accepts"]
    assert messages(served.rt, case_id) == ["My key never came."]


def test_protocol_mistakes_are_answered_in_words_with_enhanced_codes(
        serve: Callable[..., Served]) -> None:
    served = serve()
    with Wire(served.smtp_port) as wire:
        assert wire.reply().code == 220
        before_hello = wire.ask("MAIL FROM:<a@customer.example>")
        wire.ask("EHLO client.example")
        no_sender = wire.ask("RCPT TO:<case@reply.example.test>")
        wire.ask("MAIL FROM:<a@customer.example>")
        nested = wire.ask("MAIL FROM:<a@customer.example>")
        no_rcpt = wire.ask("DATA")
        unknown = wire.ask("FROB now")
        too_long = wire.ask("NOOP " + "n" * 600)
        empty = wire.ask("")
    answers = [before_hello, no_sender, nested, no_rcpt, unknown, too_long,
               empty]
    for answer in answers:
        assert ENHANCED.match(answer.lines[0]), answer.lines
        assert "Error:" not in answer.text
    assert no_sender.lines == ["503 5.5.1 Send MAIL FROM first"]
    assert no_rcpt.lines == ["503 5.5.1 Send RCPT TO first"]
    assert too_long.lines == ["500 5.5.2 Command line too long"]
