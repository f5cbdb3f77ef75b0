"""What the gateway's log must not show: a reply address's token is a
credential for its case (whoever holds it can write into the case), and
so is an AUTH secret. Our own lines mask addresses with
``mask_address``; the SMTP library's lines, and our protocol's echo of
them, pass through a filter that masks what they carry.
"""

from __future__ import annotations

import logging
import re


def mask_address(address: str) -> str:
    # The token is a credential for the case: never in the log, however
    # a client mangled the address around it (an escaped or lost "+",
    # the token alone).
    local, _, domain = address.partition("@")
    if "+" in local:
        return f"{local.partition('+')[0]}+…@{domain}"
    if len(local) > 12:
        return f"{local[:4]}…@{domain}"
    return address


class _NoCredentials(logging.Filter):
    """aiosmtpd logs the commands it receives ("mail.log"), and our
    protocol echoes its replies at DEBUG: a reply address's token and an
    AUTH secret would stand there in full. Their records pass with both
    masked, whatever level an operator lets through: what follows a "+"
    (also escaped as %2B), any long run of letters and digits (a token's
    signature, however the address around it was mangled), and the
    argument of AUTH."""

    _TOKEN = re.compile(r"(?i)(\+|%2b)[^@\s<>'\"]+")
    _LONG_RUN = re.compile(r"[0-9A-Za-z]{12,}")
    _AUTH = re.compile(r"(?i)(\bAUTH\s+\S+)\s+[^\s'\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = self._AUTH.sub(r"\1 …", text)
        masked = self._LONG_RUN.sub("…", self._TOKEN.sub(r"\1…", masked))
        if masked != text:
            record.msg, record.args = masked, ()
        return True


def quiet_protocol_log() -> None:
    """casemail logs each mail's decision itself, by its Message-ID;
    aiosmtpd's own lines (three a message at INFO, each command echoed)
    stay out below WARNING unless an operator set that logger's level."""
    protocol = logging.getLogger("mail.log")
    for logger in (protocol, logging.getLogger("casemail.intake.protocol")):
        if not any(isinstance(f, _NoCredentials) for f in logger.filters):
            logger.addFilter(_NoCredentials())
    if protocol.level == logging.NOTSET:
        protocol.setLevel(logging.WARNING)
