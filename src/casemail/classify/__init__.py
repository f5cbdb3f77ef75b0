"""Who wrote a mail: a person, an auto-responder, a mail system reporting a
failed delivery, an abuse report, a list, or we ourselves.

    from casemail.classify import classify, Verdict
    verdict = classify(read_mail(raw), envelope_from="", own_domain=...)

Reads the mail only; knows nothing of cases or the database.
"""

from casemail.classify.classifier import RULES, classify
from casemail.classify.loop import MARKER_HEADER
from casemail.classify.verdict import (
    AUTO_REPLY,
    BOUNCE,
    FEEDBACK_REPORT,
    HUMAN,
    KINDS,
    LIST,
    LOOP,
    BounceReport,
    Verdict,
)

__all__ = [
    "AUTO_REPLY", "BOUNCE", "FEEDBACK_REPORT", "HUMAN", "KINDS", "LIST",
    "LOOP", "MARKER_HEADER", "RULES", "BounceReport", "Verdict", "classify",
]
