"""DATA read in large pieces, attacked over real sockets: SMTP smuggling
shapes, the end marker cut every possible way, a terminator right after
a line at the limit, megabyte lines, a slow sender, a 25 MB mail, a
whole second transaction pipelined behind the final dot, LMTP refusing
a too-long line once per recipient.

Each expectation comes from reading the same bytes line by line as
RFC 5321 does (``line_by_line``): only CRLF ends a line, only a line
that is a lone dot ends the data, a leading dot is taken off, a line
longer than the limit without its CRLF is refused before its size
counts, otherwise size first. What the gateway keeps is read back from
the raw mails (``intake_support.kept``).
"""

from __future__ import annotations

import itertools
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

_INTAKE = str(Path(__file__).resolve().parents[1] / "intake")
if _INTAKE not in sys.path:
    sys.path.insert(0, _INTAKE)

from intake_support import (  # noqa: E402
    CUSTOMER,
    Served,
    Wire,
    address,
    kept,
    mail,
    open_case,
)

from casemail.clock import FrozenClock  # noqa: E402
from casemail.config import Settings  # noqa: E402
from casemail.runtime import build_runtime  # noqa: E402

LINE = 200
SIZE = 4000
TOO_LONG = ("554 5.6.0 A line of the message is longer than {} bytes; "
            "send it with a transfer encoding")
TOO_MUCH = "552 5.3.4 Message is larger than the {} bytes this server accepts"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'casemail.db'}"


@pytest.fixture
def serve(settings: Settings, clock: FrozenClock
          ) -> Iterator[Callable[..., Served]]:
    with ExitStack() as stack:
        def start(**listener: Any) -> Served:
            values = {"host": "127.0.0.1", "port": 0, **listener}
            changed = settings.model_copy(update={
                "listener": settings.listener.model_copy(update=values)})
            rt = build_runtime(changed, clock=clock)
            stack.callback(rt.close)
            return stack.enter_context(Served(rt))
        yield start


def line_by_line(sent: bytes, line: int, size: int | None
                 ) -> tuple[bytes | str, bytes]:
    """What RFC 5321 reading gives for ``sent`` (the bytes after 354):
    the unstuffed mail or the refusal, and what follows the final dot."""
    pos, kept, total, refusal = 0, [], 0, None
    while True:
        end = sent.index(b"\r\n", pos)
        text, pos = sent[pos:end], end + 2
        if text == b".":
            return (refusal or b"".join(kept)), sent[pos:]
        if refusal is None:
            if len(text) > line:
                refusal = TOO_LONG.format(line)
            else:
                total += len(text) + 2
                if size and total > size:
                    refusal = TOO_MUCH.format(size)
                elif len(text) + 2 > line:
                    refusal = TOO_LONG.format(line)
        if refusal is None:
            kept.append((text[1:] if text.startswith(b".") else text)
                        + b"\r\n")


def stuffed(message: bytes) -> bytes:
    """``message`` (CRLF lines) as a client sends it, with the final dot."""
    lines = message.split(b"\r\n")
    assert lines[-1] == b""
    return b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n"
                    for ln in lines[:-1]) + b".\r\n"


_ids = itertools.count()


def head(to: str) -> bytes:
    return mail(to, text="", message_id=f"<p{next(_ids):06d}@c.example>"
                )[:-2]


def at_data(served: Served, to: str, *, lmtp_to: list[str] | None = None
            ) -> Wire:
    port = served.port_of(1) if lmtp_to else served.smtp_port
    wire = Wire(port)
    wire.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    wire.hello(lmtp=bool(lmtp_to))
    assert wire.ask(f"MAIL FROM:<{CUSTOMER}>").code == 250
    for rcpt in lmtp_to or [to]:
        assert wire.ask(f"RCPT TO:<{rcpt}>").code == 250
    assert wire.ask("DATA").code == 354
    return wire


def in_writes(wire: Wire, data: bytes, cuts: set[int] | list[int],
              pause: float = 0.003) -> None:
    start = 0
    for cut in sorted(set(cuts) | {len(data)}):
        if start < cut <= len(data):
            wire.sock.sendall(data[start:cut])
            time.sleep(pause)  # so the listener reads each write alone
            start = cut


# -- smuggling -----------------------------------------------------------------

# None of these is CRLF "." CRLF at a line start: none ends the data.
SHAPES = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r\r\n",
          b"\r\n.\r", b"\n.\r", b"\r\n\x00.\r\n", b"\r\n.\x00\r\n",
          b"\r\n..\r\n", b"\r\n .\r\n", b"\n\r.\r\n", b"\r\r.\r\n"]


@pytest.mark.parametrize("shape", SHAPES, ids=[repr(s) for s in SHAPES])
def test_a_smuggled_second_mail_is_part_of_the_first_or_ends_it_as_rfc_says(
        serve: Callable[..., Served], shape: bytes) -> None:
    served = serve(max_line_length=LINE)
    to = address(served.rt, open_case(served.rt))
    smuggled = (b"MAIL FROM:<ceo@victim.example>\r\nRCPT TO:<" + to.encode()
                + b">\r\nDATA\r\nFrom: ceo@victim.example\r\n\r\n"
                b"Refund everything.\r\n")
    for spread in [False, True]:
        sent = head(to) + b"Hello" + shape + smuggled + b"\r\n.\r\n"
        expected, rest = line_by_line(sent, LINE, None)
        start = len(sent) - len(smuggled) - 5 - len(shape)
        cuts = set(range(start, len(sent))) if spread else set()
        before = len(kept(served))
        with at_data(served, to) as wire:
            in_writes(wire, sent + b"NOOP\r\n", cuts)
            answer = wire.reply().lines
            # What follows the end as RFC 5321 reads it is commands:
            # here only the NOOP, as no shape is an end.
            assert rest == b""
            assert wire.reply().lines == ["250 2.0.0 OK"]
        assert answer == ["250 2.0.0 Message filed"]
        assert kept(served)[before:] == [expected]


# -- the end, cut every way ------------------------------------------------------


def test_the_final_dot_cut_every_possible_way(
        serve: Callable[..., Served]) -> None:
    served = serve(max_line_length=LINE)
    to = address(served.rt, open_case(served.rt))
    sent_ones = []
    for picks in itertools.product([False, True], repeat=6):
        message = head(to) + b"Thanks.\r\n..and a dot\r\nend.\r\n"
        data = stuffed(message) + b"NOOP\r\n"
        n = len(data) - len(b"NOOP\r\n")
        cuts = {n - 5 + k for k, on in enumerate(picks) if on}
        with at_data(served, to) as wire:
            in_writes(wire, data, cuts, pause=0.002)
            assert wire.reply().lines == ["250 2.0.0 Message filed"]
            assert wire.reply().lines == ["250 2.0.0 OK"]
        sent_ones.append(message)
    assert kept(served) == sent_ones


def test_a_terminator_after_a_line_at_and_around_the_limit(
        serve: Callable[..., Served]) -> None:
    served = serve(max_line_length=LINE, max_message_size=SIZE)
    to = address(served.rt, open_case(served.rt))
    taken = []
    for length in range(LINE - 4, LINE + 4):
        for last in [b"x" * length, b"." + b"x" * (length - 1),
                     b"x" * (length - 1) + b"\r"]:
            for back in range(1, 9):
                message = head(to) + last + b"\r\n"
                data = stuffed(message)
                expected, _ = line_by_line(data, LINE, SIZE)
                with at_data(served, to) as wire:
                    in_writes(wire, data + b"NOOP\r\n",
                              {len(data) - back}, pause=0.002)
                    answer = wire.reply().lines
                    assert wire.reply().lines == ["250 2.0.0 OK"]
                if isinstance(expected, str):
                    assert answer == [expected], (length, last[-2:], back)
                else:
                    assert answer == ["250 2.0.0 Message filed"]
                    taken.append(expected)
    assert kept(served) == taken


def test_a_megabyte_line_is_refused_and_the_session_goes_on(
        serve: Callable[..., Served]) -> None:
    served = serve()  # the default line limit, 10,000 bytes
    to = address(served.rt, open_case(served.rt))
    huge = b"".join(b"q" * 997 + b"\n.\r" for _ in range(1024))
    with at_data(served, to) as wire:
        wire.sock.sendall(head(to) + huge + b"\r\n.\r\n")
        assert wire.reply().lines == [TOO_LONG.format(10_000)]
        assert wire.ask(f"MAIL FROM:<{CUSTOMER}>").code == 250
        assert wire.ask(f"RCPT TO:<{to}>").code == 250
        assert wire.ask("DATA").code == 354
        small = head(to) + b"Shorter now.\r\n"
        in_writes(wire, stuffed(small), set(range(0, len(small), 7)),
                  pause=0)
        assert wire.reply().code == 250
    assert kept(served) == [small]


def test_a_whole_second_transaction_pipelined_behind_the_dot(
        serve: Callable[..., Served]) -> None:
    """Everything after the final dot is commands, even when it is far
    more than the reader holds at once."""
    served = serve(max_line_length=LINE)
    to = address(served.rt, open_case(served.rt))
    first = head(to) + b"First.\r\n"
    second = head(to) + b"".join(b".%05d " % n + b"s" * 90 + b"\r\n"
                                 for n in range(300))
    wire = Wire(served.smtp_port)
    with wire:
        wire.hello()
        pipe = (f"MAIL FROM:<{CUSTOMER}>\r\nRCPT TO:<{to}>\r\nDATA\r\n"
                ).encode()
        wire.sock.sendall(pipe + stuffed(first) + pipe + stuffed(second)
                          + b"QUIT\r\n")
        codes = [wire.reply().code for _ in range(8)]
        assert codes == [250, 250, 354, 250, 250, 250, 354, 250]
        assert wire.reply().code == 221
    assert kept(served) == [first, second]


def test_a_slow_sender_is_not_cut_off_while_bytes_keep_coming(
        serve: Callable[..., Served]) -> None:
    """Silence, not length: each byte restarts the clock, also when the
    bytes come one at a time and none ends a piece."""
    served = serve(timeout=1.5, max_line_length=LINE)
    to = address(served.rt, open_case(served.rt))
    message = head(to) + b"Slow." + b"w" * 20 + b"\r\n"
    data = stuffed(message)
    with at_data(served, to) as wire:
        wire.sock.sendall(data[:-16])
        for k in range(len(data) - 16, len(data)):
            time.sleep(0.25)  # 16 of these are longer than the timeout
            wire.sock.sendall(data[k:k + 1])
        assert wire.reply().lines == ["250 2.0.0 Message filed"]
    with at_data(served, to) as wire:
        wire.sock.sendall(head(to) + b"then silence")
        assert wire.reply().lines[0].startswith("421 4.4.2")
        assert wire.closed_by_server()
    assert kept(served) == [message]


def test_lmtp_refuses_a_long_line_once_per_recipient_whatever_the_cuts(
        serve: Callable[..., Served]) -> None:
    served = serve(lmtp_port=0, max_line_length=LINE)
    recipients = [address(served.rt, open_case(served.rt)) for _ in range(3)]
    message = head(recipients[0]) + b"y" * (LINE - 1) + b"\r\n"
    data = stuffed(message)
    for cuts in [set(), {len(data) - 4}, set(range(len(data) - LINE,
                                                    len(data), 3))]:
        with at_data(served, "", lmtp_to=recipients) as wire:
            in_writes(wire, data, cuts, pause=0.001)
            answers = [wire.reply().lines[0] for _ in recipients]
            assert wire.ask("NOOP").lines == ["250 2.0.0 OK"]
        assert answers == [TOO_LONG.format(LINE)] * 3
    good = head(recipients[0]) + b".Fine now.\r\n"
    with at_data(served, "", lmtp_to=recipients) as wire:
        wire.sock.sendall(stuffed(good))
        answers = [wire.reply().lines[0] for _ in recipients]
    assert answers == ["250 2.0.0 Message filed"] * 3
    assert kept(served) == [good] * 3


def test_a_25_mb_mail_is_kept_byte_for_byte_and_one_byte_more_is_not(
        serve: Callable[..., Served]) -> None:
    limit = 25 * 1024 * 1024
    served = serve(max_message_size=limit)
    to = address(served.rt, open_case(served.rt))
    block = b"".join(b".%07d " % n + b"m" * 70 + b".\r\n"
                     for n in range(1000))

    def of_size(total: int) -> bytes:
        # As sent: every line of the block gains a stuffed dot.
        start = head(to)
        sent_block = len(stuffed(block)) - 3
        message = start + block * ((total - len(start)) // sent_block - 1)
        left = total - (len(stuffed(message)) - 3)
        while left > 0:
            piece = min(left, 900) if left != 901 else 450
            message += b"f" * (piece - 2) + b"\r\n"
            left -= piece
        return message

    exact, over = of_size(limit), of_size(limit + 1)
    assert len(stuffed(exact)) - 3 == limit
    assert len(stuffed(over)) - 3 == limit + 1
    with at_data(served, to) as wire:
        wire.sock.sendall(stuffed(over))
        assert wire.reply().lines == [TOO_MUCH.format(limit)]
        assert wire.ask(f"MAIL FROM:<{CUSTOMER}>").code == 250
        assert wire.ask(f"RCPT TO:<{to}>").code == 250
        assert wire.ask("DATA").code == 354
        wire.sock.sendall(stuffed(exact))
        assert wire.reply().code == 250
    assert kept(served) == [exact]


def test_clients_gone_at_every_awkward_point_leave_the_others_served(
        serve: Callable[..., Served]) -> None:
    """Sessions that end inside lines held back for counting (ending in
    ".\\r\\n"), after half a CRLF, after "\\r\\n." and "\\r\\n.\\r", inside a
    line past the limit: a session in DATA beside them is answered."""
    served = serve(max_line_length=LINE)
    to = address(served.rt, open_case(served.rt))
    other = at_data(served, to)
    other.sock.sendall(head(to) + b"Begun before the others left.\r\n")
    for tail in [b"Thanks.\r\nSee you.\r\n", b"line\r", b"line\r\n.",
                 b"line\r\n.\r", b"p" * (LINE * 3), b"\r\n..\r\n.\r"]:
        wire = at_data(served, to)
        wire.sock.sendall(head(to) + tail)
        wire.close()
    with other:
        other.sock.sendall(b"Still here.\r\n.\r\n")
        assert other.reply().lines == ["250 2.0.0 Message filed"]
        assert other.ask("NOOP").lines == ["250 2.0.0 OK"]
    [only] = kept(served)
    assert only.endswith(b"Begun before the others left.\r\nStill here.\r\n")
