"""MAIL FROM / RCPT TO arguments once answered as our own faults.

- A lone ``<`` (``MAIL FROM:<``, ``RCPT TO:<``) falls through the plain
  path expression to aiosmtpd's reading, whose grammar raises
  IndexError on it; that must be a syntax error, not the ``451``
  an uncaught error becomes, which a server would retry.
- A NUL inside the local part (``MAIL FROM:<kim\\x00@customer.example>``)
  was taken with 250, and on PostgreSQL, which cannot store it, the
  mail's DATA was answered 451 every time it was sent. A control
  character in the sender is refused at MAIL.
"""

from __future__ import annotations

import pytest
from hostile_serve import make_mail, message_counts, open_cases, reply_address

# The same gateway fixtures as the first set of path tests.
from test_paths_hostile import Wire, settings  # noqa: F401

from casemail.addresses import Party
from casemail.runtime import Runtime


@pytest.mark.parametrize("command", [b"MAIL FROM:<", b"MAIL FROM: <",
                                     b"RCPT TO:<"])
def test_a_lone_angle_bracket_is_a_syntax_error(port: int,
                                                command: bytes) -> None:
    wire = Wire(port)
    try:
        if command.startswith(b"RCPT"):
            assert wire.send(b"MAIL FROM:<kim@customer.example>")[0] == 250
        code, line = wire.send(command)
        assert 500 <= code < 600, line
    finally:
        wire.close()


def test_a_nul_in_the_sender_is_refused_or_filed_never_451(
        runtime: Runtime, port: int) -> None:
    (case,) = open_cases(runtime, 1)
    to = reply_address(runtime, case, Party.CUSTOMER)
    data = make_mail(sender="kim@customer.example", to=to,
                     subject="Re: key", text="Hello.",
                     message_id="<nul-sender@c.example>")
    wire = Wire(port)
    try:
        code, line = wire.send(b"MAIL FROM:<kim\x00@customer.example>")
        if code == 250:
            assert wire.send(b"RCPT TO:<" + to.encode() + b">")[0] == 250
            assert wire.send(b"DATA")[0] == 354
            wire.sock.sendall(data + b".\r\n")
            code, line = wire.reply()
            assert code == 250, line
            assert message_counts(runtime) == {"<nul-sender@c.example>": 1}
        else:
            assert 500 <= code < 600, line
    finally:
        wire.close()
