"""MAIL FROM is checked before anything is kept: an address over the
limits of RFC 5321 4.5.3.1, bytes that are not UTF-8, or UTF-8 without
SMTPUTF8 (RFC 6531 3.5) are refused with a reason; the null reverse-path
stays welcome."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from intake_support import Served, Wire

LONG_LOCAL = "x" * 300 + "@customer.example"
LONG_ADDRESS = "x" * 60 + "@" + ".".join(["sub" * 20] * 4) + ".example"


@pytest.mark.parametrize(("line", "answer"), [
    (f"MAIL FROM:<{LONG_LOCAL}>",
     "553 5.1.7 The local part of the sender address is longer than 64 "
     "bytes"),
    (f"MAIL FROM:<{LONG_ADDRESS}>",
     "553 5.1.7 The sender address is longer than 254 bytes"),
    (b"MAIL FROM:<in\xe9s@customer.example>",
     "501 5.1.7 The sender address is not valid UTF-8; send it in ASCII, "
     "or in UTF-8 with SMTPUTF8"),
    ("MAIL FROM:<inés@customer.example>",
     "553 5.6.7 The sender address is not ASCII; add the SMTPUTF8 "
     "parameter to MAIL FROM"),
    ("MAIL FROM:<ines>",
     "553 5.1.7 The sender address has no domain; use <name@domain>, or "
     "<> for a bounce"),
], ids=["long-local-part", "long-address", "not-utf8", "utf8-undeclared",
        "no-domain"])
def test_a_bad_sender_is_refused_and_the_session_goes_on(
        serve: Callable[..., Served], line: str | bytes,
        answer: str) -> None:
    served = serve()
    with Wire(served.smtp_port) as wire:
        wire.hello()
        refused = wire.ask(line)
        # Nothing was recorded: a good sender is taken next, not "nested".
        after = wire.ask("MAIL FROM:<ines.varga@customer.example>")
    assert refused.lines == [answer]
    assert after.lines == ["250 2.1.0 Sender ok"]


@pytest.mark.parametrize("line", [
    "MAIL FROM:<>",
    "MAIL FROM:<inés@customer.example> SMTPUTF8",
    "MAIL FROM:<" + "x" * 64 + "@customer.example>",
])
def test_a_good_sender_is_taken(serve: Callable[..., Served],
                                line: str) -> None:
    served = serve()
    with Wire(served.smtp_port) as wire:
        wire.hello()
        assert wire.ask(line).lines == ["250 2.1.0 Sender ok"]
