"""The message after DATA, as the listener receives it itself: dot
unstuffing (RFC 5321 4.5.2), the end at a lone dot only, the size and
line limits answered once the data has ended (4.2.5) with nothing kept,
bare LFs left as they came, LMTP's answer per recipient, and a message
cut off by the client never filed. Each test reads back the bytes the
gateway kept, so a byte lost or added in reception shows."""

from __future__ import annotations

from collections.abc import Callable

from intake_support import (
    CUSTOMER,
    Served,
    Wire,
    address,
    kept,
    mail,
    open_case,
)


REFUSED_SIZE = ("552 5.3.4 Message is larger than the 3000 bytes this "
                "server accepts")


def transaction(wire: Wire, to: str, lmtp: bool = False) -> None:
    """Greeting to ``354``, ready for the data."""
    wire.hello(lmtp=lmtp)
    assert wire.ask(f"MAIL FROM:<{CUSTOMER}>").code == 250
    assert wire.ask(f"RCPT TO:<{to}>").code == 250
    assert wire.ask("DATA").code == 354


def test_dot_stuffed_lines_are_kept_with_one_dot_less(
        serve: Callable[..., Served]) -> None:
    served = serve()
    to = address(served.rt, open_case(served.rt))
    text = ("Before the dots.\r\n.\r\n..\r\n.hidden file\r\n"
            "...three\r\nAfter the dots.")
    raw = mail(to, text=text)
    with Wire(served.smtp_port) as wire:
        transaction(wire, to)
        wire.data(raw)  # stuffs every line that starts with a dot
        assert wire.reply().code == 250
    assert kept(served) == [raw]


def test_a_stuffed_lone_dot_does_not_end_the_message(
        serve: Callable[..., Served]) -> None:
    served = serve()
    to = address(served.rt, open_case(served.rt))
    head = mail(to, text="First half.")
    with Wire(served.smtp_port) as wire:
        transaction(wire, to)
        wire.sock.sendall(head + b"..\r\nSecond half.\r\n.\r\n")
        assert wire.reply().code == 250
        assert wire.ask("NOOP").code == 250  # still in step
    assert kept(served) == [head + b".\r\nSecond half.\r\n"]


def test_bare_line_feeds_stay_inside_their_line(
        serve: Callable[..., Served]) -> None:
    """Only CRLF ends a line: a dot after a bare LF neither ends the
    message nor is taken off, as aiosmtpd did before us."""
    served = serve()
    to = address(served.rt, open_case(served.rt))
    head = mail(to, text="Odd line ends follow.")
    odd = b"one\n.\ntwo\n..three\r\nlast\r\n"
    with Wire(served.smtp_port) as wire:
        transaction(wire, to)
        wire.sock.sendall(head + odd + b".\r\n")
        assert wire.reply().code == 250
    assert kept(served) == [head + odd]


def refused_then_taken(served: Served, big_text: str) -> tuple[
        list[str], bytes]:
    """A mail with ``big_text``, then a small one in the same session:
    the answer to the first, and the second as sent."""
    to = address(served.rt, open_case(served.rt))
    small = mail(to, text="Shorter now.", message_id="<r2@c.example>")
    with Wire(served.smtp_port) as wire:
        transaction(wire, to)
        wire.data(mail(to, text=big_text))
        refused = wire.reply()
        # The session goes on: the smaller mail is taken next.
        assert wire.ask(f"MAIL FROM:<{CUSTOMER}>").code == 250
        assert wire.ask(f"RCPT TO:<{to}>").code == 250
        assert wire.ask("DATA").code == 354
        wire.data(small)
        assert wire.reply().code == 250
    return refused.lines, small


def test_a_message_over_the_size_limit_is_refused_and_not_kept(
        serve: Callable[..., Served]) -> None:
    served = serve(max_message_size=3000)
    big = "w" * 70 + "\r\n" + "w" * 4000
    refused, small = refused_then_taken(served, big)
    assert refused == [REFUSED_SIZE]
    assert kept(served) == [small]


def test_a_line_over_the_limit_is_refused_and_not_kept(
        serve: Callable[..., Served]) -> None:
    served = serve(max_line_length=2000)
    refused, small = refused_then_taken(served, "x" * 5000)
    assert refused[0].startswith("554 5.6.0 A line of the message is "
                                 "longer than 2000 bytes")
    assert kept(served) == [small]


def test_a_message_cut_off_before_its_dot_is_not_filed(
        serve: Callable[..., Served]) -> None:
    served = serve()
    to = address(served.rt, open_case(served.rt))
    with Wire(served.smtp_port) as wire:
        transaction(wire, to)
        wire.sock.sendall(mail(to, text="Half a mail"))
    # A second session proves the first one's end was handled.
    whole = mail(to, text="The whole mail.", message_id="<r3@c.example>")
    with Wire(served.smtp_port) as wire:
        transaction(wire, to)
        wire.data(whole)
        assert wire.reply().code == 250
    assert kept(served) == [whole]


def test_lmtp_answers_each_recipient_of_a_stuffed_message(
        serve: Callable[..., Served]) -> None:
    served = serve(lmtp_port=0)
    recipients = [address(served.rt, open_case(served.rt))
                  for _ in range(3)]
    raw = mail(recipients[0], text=".signature\r\n.\r\nend")
    with Wire(served.port_of(1)) as wire:
        wire.hello(lmtp=True)
        assert wire.ask(f"MAIL FROM:<{CUSTOMER}>").code == 250
        for rcpt in recipients:
            assert wire.ask(f"RCPT TO:<{rcpt}>").code == 250
        assert wire.ask("DATA").code == 354
        wire.data(raw)
        answers = [wire.reply().lines for _ in recipients]
        assert wire.ask("NOOP").code == 250
    assert answers == [["250 2.0.0 Message filed"]] * 3
    assert kept(served) == [raw] * 3


def test_a_large_message_arrives_whole(
        serve: Callable[..., Served]) -> None:
    """Many reads of the socket, lines that begin with dots among them:
    the kept bytes are the sent ones, to the last."""
    served = serve()
    to = address(served.rt, open_case(served.rt))
    lines = "\r\n".join(f".{n:07d} " + "z" * 60 for n in range(40_000))
    raw = mail(to, text=lines)
    with Wire(served.smtp_port) as wire:
        transaction(wire, to)
        wire.data(raw)
        assert wire.reply().code == 250
    assert kept(served) == [raw]
