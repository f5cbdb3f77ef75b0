"""The one root exception of casemail, and its tree.

    CasemailError
    ├── ConfigError             settings that cannot work together
    ├── AddressError            a reply address, Message-ID or VERP address
    │                           that is not ours or whose signature fails
    ├── CaseError               a request the case service refuses
    │   ├── UnknownCase         no such case (or store)
    │   ├── InvalidTransition   the transition table forbids the move
    │   └── NotAllowed          the author may not act for that party
    ├── IntakeError             mail we cannot take; carries its SMTP answer
    │   ├── MailRefused         permanent: 5xx, the sender must not retry
    │   └── TryLater            temporary: 4xx, the sender retries
    └── DeliveryError           outbound: the relay refused or was away

Lower-layer errors (SQLAlchemy, OSError, smtplib) are mapped to these at one
boundary each: ``intake.replies`` for the listener, ``outbound.delivery`` for
the relay.
"""

from __future__ import annotations


class CasemailError(Exception):
    """Root of every error casemail raises on purpose."""


class ConfigError(CasemailError):
    pass


class AddressError(CasemailError):
    pass


class CaseError(CasemailError):
    pass


class UnknownCase(CaseError):
    pass


class InvalidTransition(CaseError):
    pass


class NotAllowed(CaseError):
    pass


class IntakeError(CasemailError):
    """Mail we cannot take. ``code``/``status``/``reason`` form the reply."""

    code = 451
    status = "4.3.0"

    def __init__(self, reason: str, *, code: int | None = None,
                 status: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class MailRefused(IntakeError):
    code = 550
    status = "5.7.1"


class TryLater(IntakeError):
    code = 451
    status = "4.3.0"


class DeliveryError(CasemailError):
    """An outbound attempt failed; ``permanent`` says whether to retry."""

    def __init__(self, reason: str, *, permanent: bool,
                 code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.code = code
