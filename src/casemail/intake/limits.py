"""The limits a session and a message must keep, counted and checked.

Sizes of a single message are cut by the protocol as the bytes arrive
(``intake.protocol``); this module holds what spans sessions — how many
are open, overall and per client address —, the checks of the sender
address at MAIL, and the header check, which needs the whole message and
runs before the pipeline sees it.
"""

from __future__ import annotations

import logging
from collections import Counter

from casemail.intake import replies

log = logging.getLogger(__name__)

# Unix-socket peers have no address: they are all the local MTA.
LOCAL = "local"


class ConnectionLimits:
    """Live sessions, overall and per client address.

    One instance serves every listener of a process, so an MTA that opens
    both SMTP and LMTP sessions is counted once. Runs on the event loop
    only, so plain counters need no lock.
    """

    def __init__(self, *, overall: int, per_client: int) -> None:
        self.overall = overall
        self.per_client = per_client
        self._open: Counter[str] = Counter()

    @property
    def open_sessions(self) -> int:
        return sum(self._open.values())

    def admit(self, client: str) -> str | None:
        """Count a new session from ``client``; the refusal if over a limit.

        A refused session is not counted: it is closed at once.
        """
        if self.open_sessions >= self.overall:
            log.warning("refusing %s: %s sessions open (limit %s)", client,
                        self.open_sessions, self.overall)
            return replies.TOO_MANY_CONNECTIONS
        if self._open[client] >= self.per_client:
            log.warning("refusing %s: %s sessions from it (limit %s)",
                        client, self._open[client], self.per_client)
            return replies.TOO_MANY_FROM_CLIENT
        self._open[client] += 1
        return None

    def release(self, client: str) -> None:
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]


def client_of(peer: object) -> str:
    """The address a session counts against: the IP, without the port."""
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return LOCAL


# RFC 5321 4.5.3.1.1 and 4.5.3.1.3: 64 octets of local part, and a path
# of 256 octets with its angle brackets leaves 254 for the address.
MAX_LOCAL_PART = 64
MAX_ADDRESS = 254


def sender_refusal(address: str, *, smtputf8: bool) -> str | None:
    """The refusal of a MAIL FROM address, or None when it may be used.

    ``address`` is as aiosmtpd decoded it: bytes that were not UTF-8 are
    kept as surrogates. The null reverse-path ``<>`` is always allowed
    (RFC 5321 4.5.5): bounces and auto-replies come from it.
    """
    if address == "<>":
        return None
    try:
        octets = address.encode("utf-8")
    except UnicodeEncodeError:
        return replies.SENDER_NOT_UTF8
    # RFC 5321 4.1.2: no control character belongs in a path; a NUL
    # could not even be stored.
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in address):
        return replies.SENDER_CONTROL
    # RFC 6531 3.5: without SMTPUTF8 the envelope is ASCII only.
    if not address.isascii() and not smtputf8:
        return replies.SENDER_NEEDS_SMTPUTF8
    local, at, domain = octets.rpartition(b"@")
    if not at or not domain:
        return replies.SENDER_NO_DOMAIN
    if len(local) > MAX_LOCAL_PART:
        return replies.SENDER_LOCAL_TOO_LONG
    if len(octets) > MAX_ADDRESS:
        return replies.SENDER_TOO_LONG
    return None


def header_too_big(raw: bytes, limit: int) -> str | None:
    """The refusal when the header section of ``raw`` exceeds ``limit``.

    The header section ends at the first empty line (RFC 5322 2.1); a mail
    with no body at all is all header. Only ``limit`` bytes are searched.
    """
    window = raw[:limit + 4]
    for end in (b"\r\n\r\n", b"\n\n"):
        at = window.find(end)
        if at != -1 and at + len(end) // 2 <= limit:
            return None
    if len(raw) <= limit:
        return None
    return replies.HEADER_TOO_BIG.format(limit=limit)
