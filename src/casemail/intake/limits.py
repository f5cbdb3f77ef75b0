"""The limits a session and a message must keep, counted and checked.

Sizes of a single message are cut by the protocol as the bytes arrive
(``intake.protocol``); this module holds what spans sessions — how many
are open, overall and per client address — and the header check, which
needs the whole message and runs before the pipeline sees it.
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
