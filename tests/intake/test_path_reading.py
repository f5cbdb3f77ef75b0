"""MAIL and RCPT paths: our quick reading of the plain ``<local@domain>``
form gives exactly what aiosmtpd's full grammar gives, for every input,
and leaves everything else to it."""

from __future__ import annotations

import asyncio

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from casemail.config import ListenerSettings
from casemail.intake.limits import ConnectionLimits
from casemail.intake.protocol import GatewaySMTP


@pytest.fixture(scope="module")
def protocol() -> GatewaySMTP:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return GatewaySMTP(object(), settings=ListenerSettings(),
                           limits=ConnectionLimits(overall=1, per_client=1))
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def both(protocol: GatewaySMTP, arg: str) -> tuple[object, object]:
    """Each reading's answer, or the kind of error it fails with (the
    email package's grammar fails on some inputs, e.g. a lone quote)."""
    def read(how: object) -> object:
        try:
            return how(arg)  # type: ignore[operator]
        except Exception as exc:
            return type(exc)
    return (read(protocol._getaddr),
            read(lambda a: SMTP._getaddr(protocol, a)))


@pytest.mark.parametrize("arg", [
    "<kim@customer.example>", "<kim@customer.example> SIZE=2048",
    "  <kim@customer.example>\tBODY=8BITMIME SMTPUTF8 ",
    "<case+7.c.1abc@reply.example.test>", "<A.B-c_d@X.Y>",
    "<>", "<a..b@c>", "<.a@b>", "<a.@b>", "<a@b..c>", "<\"a b\"@c>",
    "<@relay.example:kim@customer.example>", "<a@[127.0.0.1]>",
    "kim@customer.example", "<kim@customer.example", "<a@b>x", "<a@b>  ",
    "<a@b(comment)>", "<a@b>\r\n", "<ü@b.example>", "", "<", " <", '"',
    "<" + "x" * 64 + "@b.example>", "<" + "x" * 65 + "@b.example>",
])
def test_known_shapes_read_as_aiosmtpd_reads_them(protocol: GatewaySMTP,
                                                  arg: str) -> None:
    ours, theirs = both(protocol, arg)
    assert ours == _as_syntax_error(theirs)


def _as_syntax_error(theirs: object) -> object:
    # Where aiosmtpd's reading fails outright, ours says "not a path"
    # (None, None: 501), not the 451 an uncaught error would become.
    return (None, None) if isinstance(theirs, type) else theirs


_PIECES = st.sampled_from(["a", "Z", "0", ".", "@", "<", ">", " ", "\t",
                           '"', "(", ")", "+", "-", "_", "=", "[", "]",
                           ":", ",", "\\", "é", "SIZE=1", "x" * 30])


@settings(max_examples=3000, deadline=None)
@given(st.lists(_PIECES, max_size=14).map("".join))
def test_any_path_reads_as_aiosmtpd_reads_it(protocol: GatewaySMTP,
                                             arg: str) -> None:
    ours, theirs = both(protocol, arg)
    assert ours == _as_syntax_error(theirs)
