"""The message after DATA arrives in pieces of any size, cut anywhere: in
the middle of a CRLF, right before or after the final dot, inside a line
longer than the reader holds. The gateway keeps exactly the unstuffed
bytes and gives exactly the refusal that reading the same bytes line by
line gives (RFC 5321 4.5.2, 4.5.3.1.6, 4.2.5), whatever the cuts.

Each message goes over a real socket in separate writes with a short
pause between them, so the listener reads it in those pieces.
"""

from __future__ import annotations

import base64
import itertools
import socket
import struct
import time
from collections.abc import Callable

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from intake_support import (
    CUSTOMER,
    Served,
    Wire,
    address,
    kept,
    mail,
    open_case,
)


LINE = 200  # max_line_length: a line with its CRLF may have this many bytes
SIZE = 3000  # max_message_size, in bytes as sent (dot-stuffed)
SMALL = 700  # the same for the drawn messages, so that some pass it

TOO_LONG = ("554 5.6.0 A line of the message is longer than 200 bytes; "
            "send it with a transfer encoding")
TOO_MUCH = ("552 5.3.4 Message is larger than the {} bytes this server "
            "accepts")

_ids = itertools.count(1)


def stuffed(message: bytes) -> bytes:
    """``message`` (whole CRLF lines) as a client sends it after ``354``:
    a dot before every line that starts with one, then the lone dot."""
    assert message == b"" or message.endswith(b"\r\n")
    lines = message.split(b"\r\n")[:-1]
    return b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n"
                    for ln in lines) + b".\r\n"


def reading(sent: bytes, size_limit: int) -> bytes | str:
    """What reading ``sent`` one CRLF line at a time gives: the content
    up to the lone dot, each line's leading dot taken off, or the refusal
    of the first line to pass a limit. A line longer than the limit
    before its CRLF is refused as too long even when it also passes the
    size limit (it never fits the reader); otherwise size comes first."""
    lines = sent.split(b"\r\n")
    end = lines.index(b".")
    size = 0
    kept = []
    for line in lines[:end]:
        if len(line) > LINE:
            return TOO_LONG
        size += len(line) + 2
        if size > size_limit:
            return TOO_MUCH.format(size_limit)
        if len(line) + 2 > LINE:
            return TOO_LONG
        kept.append((line[1:] if line.startswith(b".") else line) + b"\r\n")
    return b"".join(kept)


def opened(served: Served, to: str) -> Wire:
    """A session at ``354``; the socket sends each write at once."""
    wire = Wire(served.smtp_port)
    wire.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    wire.hello()
    assert wire.ask(f"MAIL FROM:<{CUSTOMER}>").code == 250
    assert wire.ask(f"RCPT TO:<{to}>").code == 250
    assert wire.ask("DATA").code == 354
    return wire


def send_in_pieces(wire: Wire, data: bytes, cuts: set[int]) -> None:
    """``data`` in one write per stretch between ``cuts``, with a pause
    after each so the listener reads them one by one."""
    start = 0
    for cut in sorted(cuts | {len(data)}):
        if start < cut <= len(data):
            wire.sock.sendall(data[start:cut])
            time.sleep(0.002)
            start = cut


def head(to: str) -> bytes:
    """A header section and its blank line, with a Message-ID of its own
    (a message id seen before would be filed as a duplicate)."""
    # Fixed width: the drawn cuts must not depend on the count.
    message_id = f"<c{next(_ids):08d}@customer.example>"
    return mail(to, text="", message_id=message_id)[:-2]


# -- any message, any cuts ---------------------------------------------------

_started: list[tuple[Callable[..., Served], Served, str]] = []


def _listening(serve: Callable[..., Served]) -> tuple[Served, str]:
    """One listener and case for all the examples of one test run (each
    message is a session of its own)."""
    if not _started or _started[0][0] is not serve:
        served = serve(max_line_length=LINE, max_message_size=SMALL)
        _started[:] = [(serve, served, address(served.rt,
                                               open_case(served.rt)))]
    return _started[0][1], _started[0][2]


_BASE64 = st.binary(min_size=1, max_size=1500).map(
    lambda b: base64.encodebytes(b).replace(b"\n", b"\r\n")[:-2])
_TRICKY = st.sampled_from([
    b"", b".", b"..", b"...", b".hidden", b"Thanks.", b"end.", b" .",
    b"a\nb", b"\n.", b".\n.", b"bare\rCR", b"\r", b"\n", b"\r.", b".\r",
    b"x.\r", b"tab\t.",
])
_SHORT = st.lists(st.sampled_from([b"a", b"Z", b".", b"\r", b"\n", b" "]),
                  max_size=12).map(b"".join).filter(lambda b: b"\r\n" not in b)
# Lines whose length with CRLF lands on, just under or just over the
# limit, with and without a dot that stuffing adds (and that counts).
_NEAR = st.tuples(st.sampled_from([b"", b"."]),
                  st.integers(LINE - 5, LINE + 1)).map(
    lambda t: t[0] + b"n" * (t[1] - len(t[0])))
_LINES = st.one_of(_TRICKY, _SHORT, _BASE64, _NEAR)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.lists(_LINES, max_size=40), data=st.data())
def test_any_message_cut_anywhere_is_read_as_line_by_line(
        serve: Callable[..., Served], body: list[bytes],
        data: st.DataObject) -> None:
    served, to = _listening(serve)
    # Base64 lines come several to an item: CRLF inside, none at the end.
    message = head(to) + b"".join(ln + b"\r\n" for ln in body)
    sent = stuffed(message)
    expected = reading(sent, SMALL)
    assert expected == message or isinstance(expected, str)  # the model
    n = len(sent)
    cuts = set(data.draw(st.lists(st.integers(1, n - 1), max_size=10),
                         label="cuts"))
    # Cuts that split a CRLF, or leave the reader a CR two bytes from
    # the end (where a piece it cannot end at ".\r\n" stops); and cuts
    # around the final dot.
    crlfs = [i for i in range(n) if sent[i:i + 2] == b"\r\n"]
    cuts |= set(data.draw(st.lists(st.sampled_from(
        [i + 1 for i in crlfs] + [i + 3 for i in crlfs]), max_size=6),
        label="cuts at CRLFs"))
    cuts |= data.draw(st.sets(st.sampled_from(range(n - 5, n))),
                      label="cuts at the end")
    before = len(kept(served))
    with opened(served, to) as wire:
        send_in_pieces(wire, sent, cuts)
        answer = wire.reply()
        assert wire.ask("NOOP").code == 250  # still in step
    now = kept(served)
    event(expected[:3] if isinstance(expected, str) else "kept")
    if isinstance(expected, str):
        assert answer.lines == [expected]
        assert len(now) == before
    else:
        assert answer.code == 250, answer.lines
        assert now[before:] == [expected]


# -- the edges, one at a time ------------------------------------------------


def test_an_empty_message_ends_at_once(
        serve: Callable[..., Served]) -> None:
    served = serve()
    to = address(served.rt, open_case(served.rt))
    with opened(served, to) as wire:
        wire.sock.sendall(b".\r\n")
        assert wire.reply().code == 250
        assert wire.ask("NOOP").code == 250
    assert kept(served) == [b""]


def test_a_message_of_one_stuffed_dot_is_that_dot(
        serve: Callable[..., Served]) -> None:
    served = serve()
    to = address(served.rt, open_case(served.rt))
    with opened(served, to) as wire:
        send_in_pieces(wire, b"..\r\n.\r\n", {1, 2, 3, 4, 5})
        assert wire.reply().code == 250
        assert wire.ask("NOOP").code == 250
    assert kept(served) == [b".\r\n"]


def test_a_dot_at_the_end_of_a_line_is_text(
        serve: Callable[..., Served]) -> None:
    """".\\r\\n" ends many a sentence: only at the start of a line does it
    end the message, however the line is cut, and also where the reader
    finds it further than its limit (after the header)."""
    served = serve(max_line_length=LINE)
    to = address(served.rt, open_case(served.rt))
    sent_ones = []
    for cut in range(-3, 4):
        message = head(to) + b"Thanks.\r\nSee you.\r\n"
        with opened(served, to) as wire:
            send_in_pieces(wire, stuffed(message), {len(message) + cut})
            assert wire.reply().code == 250
            assert wire.ask("NOOP").code == 250
        sent_ones.append(message)
    assert kept(served) == sent_ones


def test_a_dot_after_a_bare_line_feed_or_return_is_text(
        serve: Callable[..., Served]) -> None:
    """Only CRLF ends a line, so ".\\r\\n" after a bare LF or CR is the
    end of a line of text, not of the message."""
    served = serve()
    to = address(served.rt, open_case(served.rt))
    sent_ones = []
    for odd in [b"one\n.\r\n", b"one\r.\r\n", b"\n.\r\n", b"\r.\r\n"]:
        message = head(to) + odd + b"two\r\n"
        with opened(served, to) as wire:
            cut = len(message) - len(b"two\r\n") - 3
            send_in_pieces(wire, stuffed(message), {cut})
            assert wire.reply().code == 250
            assert wire.ask("NOOP").code == 250
        sent_ones.append(message)
    assert kept(served) == sent_ones


def test_a_crlf_cut_in_two_is_still_one_crlf(
        serve: Callable[..., Served]) -> None:
    """More than the reader holds with no ".\\r\\n" in it is taken up
    to its last two bytes; here that piece ends in the CR of a CRLF,
    before a stuffed dot and before the final dot."""
    served = serve(max_line_length=LINE)
    to = address(served.rt, open_case(served.rt))
    message = head(to) + b"w" * 150 + b"\r\n.dot\r\n" + b"v" * 150 + b"\r\n"
    sent = stuffed(message)
    stuffed_dot = sent.index(b"\r\n..dot") + 3
    with opened(served, to) as wire:
        send_in_pieces(wire, sent, {stuffed_dot, len(sent) - 2})
        assert wire.reply().code == 250
        assert wire.ask("NOOP").code == 250
    assert kept(served) == [message]


def refused_or_kept(served: Served, to: str, message: bytes,
                    cuts: frozenset[int] = frozenset()) -> str:
    """Send ``message``; the answer's text. The session must go on."""
    with opened(served, to) as wire:
        send_in_pieces(wire, stuffed(message), set(cuts))
        answer = wire.reply()
        assert wire.ask("NOOP").code == 250
    return answer.text


def test_a_line_of_the_limit_is_taken_and_one_byte_more_is_not(
        serve: Callable[..., Served]) -> None:
    served = serve(max_line_length=LINE, max_message_size=SIZE)
    to = address(served.rt, open_case(served.rt))
    at_limit = head(to) + b"x" * (LINE - 2) + b"\r\n"
    stuffed_over = head(to) + b"." + b"x" * (LINE - 3) + b"\r\n"
    one_over = head(to) + b"x" * (LINE - 1) + b"\r\n"
    beyond = head(to) + b"x" * (LINE * 3) + b"\r\n"
    assert refused_or_kept(served, to, at_limit).startswith("250")
    # The stuffed dot is part of the line as sent.
    assert refused_or_kept(served, to, stuffed_over) == TOO_LONG
    assert refused_or_kept(served, to, one_over) == TOO_LONG
    assert refused_or_kept(served, to, beyond) == TOO_LONG
    assert kept(served) == [at_limit]


def test_a_message_of_the_size_limit_is_taken_and_one_byte_more_is_not(
        serve: Callable[..., Served]) -> None:
    """The size counts the bytes as sent, stuffed dots included, however
    the message comes in pieces."""
    served = serve(max_line_length=LINE, max_message_size=SIZE)
    to = address(served.rt, open_case(served.rt))

    def of_size(total: int) -> bytes:
        # A stuffed line, then lines as long as a line may be.
        start = head(to) + b".dot\r\n"
        left = total - len(start) - 1  # the stuffed dot
        full = b"x" * (LINE - 2) + b"\r\n"
        count = 0
        while left > LINE + 1:
            left, count = left - LINE, count + 1
        odd = [left] if left <= LINE else [left // 2, left - left // 2]
        return start + b"".join(b"z" * (n - 2) + b"\r\n" for n in odd) \
            + full * count

    # Cut after the stuffed line, inside the long lines, and inside the
    # last but one, so that the last piece begins inside a line.
    cuts = frozenset([len(head(to)) + 6, *range(400, SIZE - 600, 150),
                      SIZE - LINE - LINE // 2])
    taken = []
    for pieces in [frozenset(), cuts]:
        exact, over = of_size(SIZE), of_size(SIZE + 1)
        assert len(stuffed(exact)) - 3 == SIZE
        assert len(stuffed(over)) - 3 == SIZE + 1
        assert refused_or_kept(served, to, exact, pieces).startswith("250")
        assert refused_or_kept(served, to, over, pieces) \
            == TOO_MUCH.format(SIZE)
        taken.append(exact)
    assert kept(served) == taken


def test_the_first_limit_passed_is_the_answer(
        serve: Callable[..., Served]) -> None:
    """Lines are judged in order, size first; but a line longer than the
    line limit even without its CRLF is refused as too long at once."""
    served = serve(max_line_length=LINE, max_message_size=SIZE)
    to = address(served.rt, open_case(served.rt))

    def near_the_size() -> bytes:
        start = head(to)
        lines = (SIZE - len(start) - 100) // 100
        return start + b"".join(b"y" * 98 + b"\r\n" for _ in range(lines))

    start = near_the_size()
    assert SIZE - 200 < len(start) <= SIZE - 100
    longer = b"x" * (LINE * 3) + b"\r\n"
    assert refused_or_kept(served, to, start + b"x" * LINE + b"\r\n") \
        == TOO_MUCH.format(SIZE)
    assert refused_or_kept(
        served, to, near_the_size() + b"x" * (LINE + 1) + b"\r\n") == TOO_LONG
    assert refused_or_kept(
        served, to, near_the_size() + b"y" * 150 + b"\r\n" + longer) \
        == TOO_MUCH.format(SIZE)
    assert refused_or_kept(
        served, to, head(to) + longer + b"y" * SIZE + b"\r\n") == TOO_LONG
    assert kept(served) == []


def test_a_long_text_of_sentences_arrives_whole(
        serve: Callable[..., Served]) -> None:
    """Every line ends in a dot and some begin with one, for far more
    than the reader holds: the kept bytes are the sent ones, and one
    byte more than the size limit is refused."""
    lines = b"".join(b"." * (n % 7 == 0) + b"Sentence %06d is done.\r\n" % n
                     for n in range(8000))
    size = len(lines) + 3000
    served = serve(max_message_size=size)
    to = address(served.rt, open_case(served.rt))

    def of_size(total: int) -> bytes:
        start = head(to) + lines
        filler = total - (len(stuffed(start)) - 3) - 2
        return start + b"f" * filler + b"\r\n"

    message = of_size(size)
    assert len(stuffed(message)) - 3 == size
    assert refused_or_kept(served, to, message).startswith("250")
    assert refused_or_kept(served, to, of_size(size + 1)) \
        == TOO_MUCH.format(size)
    assert kept(served) == [message]


def test_a_command_in_the_same_write_as_the_dot_is_answered(
        serve: Callable[..., Served]) -> None:
    served = serve()
    to = address(served.rt, open_case(served.rt))
    message = head(to) + b"Thanks.\r\n"
    with opened(served, to) as wire:
        wire.sock.sendall(stuffed(message) + b"NOOP\r\nQUIT\r\n")
        assert wire.reply().code == 250
        assert wire.reply().code == 250
        assert wire.reply().code == 221
        assert wire.closed_by_server()
    assert kept(served) == [message]


def test_a_client_gone_in_the_middle_of_data_leaves_the_others_served(
        serve: Callable[..., Served]) -> None:
    served = serve(max_line_length=LINE)
    to = address(served.rt, open_case(served.rt))
    other = opened(served, to)
    # One leaves after half a CRLF, one inside a line longer than the
    # reader holds, one with a reset instead of a close.
    for tail in [b"half a line\r", b"q" * (LINE * 2), b"reset"]:
        wire = opened(served, to)
        wire.sock.sendall(head(to) + tail)
        time.sleep(0.01)
        if tail == b"reset":
            wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
        wire.close()
    message = head(to) + b"Still here.\r\n"
    with other:
        other.sock.sendall(stuffed(message))
        assert other.reply().code == 250
    whole = head(to) + b"And a new one.\r\n"
    with opened(served, to) as wire:
        wire.sock.sendall(stuffed(whole))
        assert wire.reply().code == 250
    assert kept(served) == [message, whole]
