"""A reply address's token is a credential for its case: whoever reads
the gateway's log must not find one there, neither in casemail's own
lines nor in those of the SMTP library under it."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from intake_support import Served, Wire, address, mail, open_case, send


def _token(reply_address: str) -> str:
    return reply_address.partition("+")[2].partition("@")[0]


def test_a_mail_at_the_default_level_leaves_no_token_in_the_log(
        serve: Callable[..., Served], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # as ``casemail serve`` runs
    served = serve()
    case_id = open_case(served.rt)
    to = address(served.rt, case_id)
    answer = send(served.smtp_port, to, mail(to))
    assert answer.lines == ["250 2.0.0 Message filed"]
    assert f"case {case_id}: filed" in caplog.text
    assert _token(to) not in caplog.text


def test_the_protocol_lines_an_operator_asks_for_are_masked(
        serve: Callable[..., Served], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mail.log")
    served = serve()
    to = address(served.rt, open_case(served.rt))
    with Wire(served.smtp_port) as wire:
        wire.hello()
        wire.ask("MAIL FROM:<ines@customer.example>")
        assert wire.ask(f"RCPT TO:<{to}>").code == 250
        wire.ask("RSET")
        wire.ask("AUTH PLAIN AGluZXMAc2VjcmV0LXBhc3N3b3Jk")
    protocol = [r.getMessage() for r in caplog.records
                if r.name == "mail.log"]
    assert any("RCPT" in line.upper() for line in protocol), protocol
    assert not any(_token(to) in line for line in protocol), protocol
    assert not any("AGluZXMAc2VjcmV0LXBhc3N3b3Jk" in line
                   for line in protocol), protocol


def test_a_token_in_a_mangled_address_or_command_stays_out_of_the_log(
        serve: Callable[..., Served], caplog: pytest.LogCaptureFixture
) -> None:
    # Clients escape the "+", lose it, shout, or send the address as a
    # command of its own: each way, the signature would still open the
    # case once put back together.
    caplog.set_level(logging.DEBUG)  # as ``casemail -v serve`` runs
    served = serve()
    to = address(served.rt, open_case(served.rt))
    local, _, domain = to.partition("@")
    base, _, token = local.partition("+")
    signature = token.rsplit(".", 1)[-1]
    tries = [f"{base}%2B{token}@{domain}", f"{base}-{token}@{domain}",
             f"{token}@{domain}", to.upper()]
    with Wire(served.smtp_port) as wire:
        wire.hello()
        wire.ask("MAIL FROM:<ines@customer.example>")
        for address_tried in tries:
            wire.ask(f"RCPT TO:<{address_tried}>")
        wire.ask(to.upper())  # not a command at all
        wire.ask(f"RCPT\tTO:<{to}>")
    assert "RCPT" in caplog.text
    assert signature.lower() not in caplog.text.lower()
