"""Our own mail coming back to us.

Mail we sent can come back in through a forwarding rule, a catch-all that
points at the reply domain, or a list that echoes its posts.  Filing it
would answer ourselves, so it is recognised first and outranks every other
kind.  All four rules need the reply domain; without it only the marker
header can speak.
"""

from __future__ import annotations

from casemail.classify.rule import (
    Inbound,
    Rule,
    domain_of,
    register,
    same_or_sub_domain,
)
from casemail.classify.verdict import LOOP

RULES: list[Rule] = []

# Every mail we send carries this header with our reply domain as value;
# outbound/compose sets it.  A value naming another domain is another
# casemail's mail, which is a person's reply to us as far as we can tell.
MARKER_HEADER = "X-Casemail-Origin"


def _ours(mail: Inbound, address: str) -> bool:
    if mail.own_domain is None:
        return False
    return same_or_sub_domain(domain_of(address), mail.own_domain)


@register(RULES, "own-from", "From: at our reply domain", LOOP)
def own_from(mail: Inbound) -> bool:
    # A report from the mail system at our domain (our relay bouncing one
    # of our notifications) is not our mail: the bounce rules read it.
    if mail.daemon_sender:
        return False
    return _ours(mail, mail.from_address)


@register(RULES, "own-message-id", "Message-ID minted at our reply domain",
          LOOP)
def own_message_id(mail: Inbound) -> bool:
    # Only this mail's own Message-ID: In-Reply-To and References name our
    # ids in every honest reply.
    if mail.daemon_sender:
        return False
    return _ours(mail, mail.header("Message-ID").strip("<> "))


@register(RULES, "own-envelope", "envelope MAIL FROM at our reply domain",
          LOOP)
def own_envelope(mail: Inbound) -> bool:
    return bool(mail.envelope_from) and _ours(mail, mail.envelope_from or "")


@register(RULES, "own-marker", f"{MARKER_HEADER} header", LOOP)
def own_marker(mail: Inbound) -> bool:
    value = mail.header_lower(MARKER_HEADER)
    if not value:
        return False
    return mail.own_domain is None or value == mail.own_domain
