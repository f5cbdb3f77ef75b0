"""Who wrote a mail: runs every rule, keeps their names, decides the kind.

Rules are small and independent (see ``rule.Rule``); the list below is the
whole classifier.  Every rule runs, so the stored names show all the
evidence, not just the first; the kind is the strongest any fired rule
decides, by ``verdict.PRECEDENCE``.
"""

from __future__ import annotations

import logging

from casemail.classify import (
    autoreply,
    dsn,
    feedback,
    headers,
    loop,
    providers,
)
from casemail.classify.rule import Inbound, Rule
from casemail.classify.verdict import (
    BOUNCE,
    HUMAN,
    PRECEDENCE,
    BounceReport,
    Verdict,
)
from casemail.mime.model import ReadMail

log = logging.getLogger(__name__)

RULES: list[Rule] = [
    *loop.RULES,
    *dsn.RULES,
    *providers.RULES,
    *feedback.RULES,
    *headers.RULES,
    *autoreply.RULES,
]


def classify(mail: ReadMail, *, envelope_from: str | None = None,
             own_domain: str | None = None) -> Verdict:
    """The kind of ``mail`` and every rule that says so.

    ``envelope_from`` is the SMTP MAIL FROM: ``""`` for the null
    reverse-path, None when unknown.  ``own_domain`` is our reply domain.
    """
    inbound = Inbound(mail, envelope_from=envelope_from,
                      own_domain=own_domain)
    fired = [rule for rule in RULES if _fires(rule, inbound)]
    kinds = {rule.decides for rule in fired if rule.decides}
    kind = next((k for k in PRECEDENCE if k in kinds), HUMAN)
    verdict = Verdict(kind=kind, rules=[rule.name for rule in fired])
    if kind == BOUNCE:
        verdict.bounce = read_bounce(inbound)
    # The pipeline logs the decision with the case; this is the detail.
    log.debug("%s classified %s by %s", mail.message_id, kind,
             ",".join(verdict.rules) or "no rule")
    return verdict


def read_bounce(inbound: Inbound) -> BounceReport:
    """The RFC 3464 report if there is one, else the text's."""
    try:
        return dsn.read_dsn(inbound) or providers.read_text_bounce(inbound)
    except Exception:  # the kind stands; only the details are unread
        log.warning("%s bounce report unreadable", inbound.mail.message_id,
                    exc_info=True)
        return BounceReport(source="unreadable")


def _fires(rule: Rule, inbound: Inbound) -> bool:
    # Malformed mail is data: a rule that trips over it did not fire, and
    # the other rules still decide.
    try:
        return rule.check(inbound)
    except Exception:
        log.warning("%s rule %s failed on this mail",
                    inbound.mail.message_id, rule.name, exc_info=True)
        return False
