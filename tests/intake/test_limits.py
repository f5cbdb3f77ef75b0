"""Limits that span a session or many: concurrent sessions overall and
per client address, silence, recipients per message. Each is answered
with its code and a reason, then the connection is closed or the
session goes on, as RFC 5321 asks."""

from __future__ import annotations

from collections.abc import Callable

from intake_support import Served, Wire, address, open_case

PER_CLIENT = ("421 4.7.0 Too many connections from your address, "
              "try again later")
OVERALL = "421 4.3.2 Too many connections to this server, try again later"


def greeted(port: int, source: str = "127.0.0.1") -> Wire:
    wire = Wire(port, source=source)
    assert wire.reply().code == 220
    return wire


def test_one_client_address_cannot_take_more_than_its_share(
        serve: Callable[..., Served]) -> None:
    served = serve(max_connections_per_client=2, max_connections=10)
    port = served.smtp_port
    first, second = greeted(port), greeted(port)
    with Wire(port) as third:
        refused = third.reply()
        assert third.closed_by_server()
    # Another address is still welcome while this one is full.
    with greeted(port, source="127.0.0.2") as other:
        assert other.ask("NOOP").code == 250
    # A session that ends frees its place.
    assert first.ask("QUIT").code == 221
    assert first.closed_by_server()
    with greeted(port) as fourth:
        assert fourth.ask("NOOP").code == 250
    first.close()
    second.close()
    assert refused.lines == [PER_CLIENT]


def test_the_server_as_a_whole_has_a_ceiling(
        serve: Callable[..., Served]) -> None:
    served = serve(max_connections=2, max_connections_per_client=10)
    port = served.smtp_port
    held = [greeted(port), greeted(port, source="127.0.0.2")]
    with Wire(port, source="127.0.0.3") as third:
        refused = third.reply()
        assert third.closed_by_server()
    for wire in held:
        wire.close()
    assert refused.lines == [OVERALL]


def test_smtp_and_lmtp_sessions_share_one_count(
        serve: Callable[..., Served]) -> None:
    served = serve(lmtp_port=0, max_connections_per_client=1)
    with greeted(served.smtp_port), Wire(served.port_of(1)) as lmtp:
        refused = lmtp.reply()
    assert refused.lines == [PER_CLIENT]


def test_a_silent_session_is_told_why_before_it_is_closed(
        serve: Callable[..., Served]) -> None:
    served = serve(timeout=0.3)
    with greeted(served.smtp_port) as wire:
        # No command: the server speaks first, then hangs up.
        notice = wire.reply()
        assert wire.closed_by_server()
    assert notice.lines == [
        "421 4.4.2 Nothing heard for too long, closing the connection"]


def test_recipients_beyond_the_limit_are_deferred_not_refused(
        serve: Callable[..., Served]) -> None:
    served = serve(max_recipients=2)
    cases = [open_case(served.rt) for _ in range(3)]
    with greeted(served.smtp_port) as wire:
        wire.ask("EHLO client.example")
        wire.ask("MAIL FROM:<ines.varga@customer.example>")
        answers = [wire.ask(f"RCPT TO:<{address(served.rt, c)}>").lines[0]
                   for c in cases]
    # 452: the sender delivers the rest in a later transaction
    # (RFC 5321 4.5.3.1.10).
    assert answers == ["250 2.1.5 Recipient ok", "250 2.1.5 Recipient ok",
                       "452 4.5.3 Too many recipients for one message"]
