"""SMTP/LMTP reply texts, and the one mapping from errors to replies.

Every answer carries an enhanced status code (RFC 3463) and a reason a
person can act on. No exception reaches aiosmtpd unmapped: its default
``500 Error: (SomeClass)`` makes the sending server bounce the mail and
tells the world what broke inside.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError, OperationalError, TimeoutError

from casemail.errors import AddressError, CasemailError, IntakeError, UnknownCase

log = logging.getLogger(__name__)

# Recipients
NO_SUCH_CASE = "550 5.1.1 No such case: this reply address is not valid"
RCPT_OK = "250 2.1.5 Recipient ok"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients for one message"
RELAY_DENIED = "550 5.7.1 This server only takes mail for its reply domain"
NO_MAIL_FROM = "503 5.5.1 Send MAIL FROM first"

# Data
ACCEPTED = "250 2.0.0 Message filed"
HELD = "250 2.0.0 Message kept for review"
RECORDED = "250 2.0.0 Automated message recorded"
DUPLICATE = "250 2.0.0 Message already filed"
QUARANTINED = "250 2.0.0 Message kept; it will be processed later"
NO_THREAD = ("550 5.1.1 This message belongs to no case: reply to a mail "
             "from the case instead")
TOO_BIG = "552 5.3.4 Message is larger than this server accepts"
TRY_LATER = "451 4.3.0 Temporary problem storing the message, try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"


def for_error(error: BaseException, *, where: str) -> str:
    """The reply for ``error`` raised while handling ``where`` (RCPT, DATA).

    Anything we do not know is temporary: the sending server keeps the mail
    and tries again, and nothing is lost while we fix the cause.
    """
    if isinstance(error, IntakeError):
        return f"{error.code} {error.status} {_one_line(error.reason)}"
    if isinstance(error, AddressError | UnknownCase):
        return NO_SUCH_CASE
    if isinstance(error, OperationalError | TimeoutError | DBAPIError):
        log.warning("%s: database unavailable: %s", where,
                    type(error).__name__)
        return TRY_LATER
    if isinstance(error, CasemailError):
        log.error("%s: unmapped casemail error %s", where, type(error).__name__)
        return TRY_LATER
    log.error("%s: unexpected %s", where, type(error).__name__,
              exc_info=error)
    return TRY_LATER


def _one_line(text: str) -> str:
    return " ".join(text.split())[:400]
