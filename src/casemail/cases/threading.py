"""Which case, and which party, a mail belongs to.

The reply address decides: its token names case and party and is signed.
When the token is gone — a client that drops the ``+token`` part, a reply
to our notification sender instead of the ``Reply-To`` — the Message-IDs
in ``In-Reply-To`` and ``References`` (RFC 5322 3.6.4) are matched against
the signed ids of mail we sent. The subject alone never threads a mail:
anyone can type a subject.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from casemail.addresses import Party, Signer
from casemail.errors import AddressError
from casemail.mime.model import ReadMail


@dataclass(frozen=True)
class Route:
    """Where an envelope recipient points before the mail is read."""

    kind: str  # "reply" (token), "fallback" (ours, no token), "bounce" (VERP)
    case_id: int | None = None
    party: Party | None = None
    outbox_id: int | None = None


@dataclass(frozen=True)
class Thread:
    case_id: int
    party: Party
    via: str  # "token" or "references"


def route_recipient(signer: Signer, address: str) -> Route:
    """Classify an envelope recipient at RCPT time; ``AddressError`` if
    the address is not one we can take."""
    if signer.is_bounce_address(address):
        return Route("bounce", outbox_id=signer.read_envelope_sender(address))
    if signer.is_base_address(address):
        return Route("fallback")
    target = signer.read_reply_address(address)
    return Route("reply", case_id=target.case_id, party=target.party)


def find_thread(signer: Signer, route: Route, mail: ReadMail) -> Thread | None:
    """The case and party of a mail for ``route``, or None."""
    return next(candidate_threads(signer, route, mail), None)


def candidate_threads(signer: Signer, route: Route,
                      mail: ReadMail) -> Iterator[Thread]:
    """Every case and party the mail may belong to, the likeliest first:
    the reply address's token alone, else each of our Message-IDs it
    answers, the newest first (a case missing from this database, say
    from a restored backup, then gives way to the next)."""
    if route.kind == "reply" and route.case_id is not None:
        assert route.party is not None
        yield Thread(route.case_id, route.party, "token")
        return
    if route.kind != "fallback":
        return
    # The newest reference first: In-Reply-To, then References from the end.
    for message_id in [*mail.in_reply_to, *reversed(mail.references)]:
        try:
            sent = signer.read_message_id(message_id)
        except AddressError:
            continue
        # Our mail went to ``sent.party``; the reply comes from that party.
        if sent.party in (Party.CUSTOMER, Party.MERCHANT):
            yield Thread(sent.case_id, sent.party, "references")
