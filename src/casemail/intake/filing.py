"""One mail on its way into a case, and how it ended.

``Reading`` is what was read of a mail, once, for all its recipients;
``Filing`` is that mail for one recipient, waiting for the writer;
``Outcome`` is the end of it, with the reply its sender gets. The two
checks at the bottom tell a database that failed from one that refused
a value, and a transaction undone to break a deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from casemail.cases.threading import Route
from casemail.classify import Verdict
from casemail.intake import replies
from casemail.intake.rawstore import Envelope, idempotency_key
from casemail.mime.model import ReadMail


@dataclass(frozen=True)
class Outcome:
    status: str
    reply: str
    case_id: int | None = None
    raw_mail_id: int | None = None


@dataclass
class Reading:
    """One mail read and classified once, shared by all its recipients."""

    mail: ReadMail
    verdict: Verdict
    # The sha256 of the raw mail when it was written as a file
    # (``rawstore.store_in_file``), else "".
    raw_file: str = ""


@dataclass(frozen=True)
class Filing:
    """One mail for one recipient, read once, waiting to be filed."""

    raw: bytes
    envelope: Envelope
    route: Route
    reading: Reading | None  # None: reading failed; read again, quarantine
    # Hashed where the filing is made (a reading thread), not under the
    # write lock.
    key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", idempotency_key(
            self.raw, self.envelope.recipient))


def failed_outcome(error: Exception) -> Outcome:
    """Nothing was kept: the sender is told to try again."""
    return Outcome("failed", replies.for_error(error, where="DATA"))


def mail_ids(filings: Sequence[Filing]) -> str:
    return " ".join(mail_id(f.reading) for f in filings)


def mail_id(reading: Reading | None) -> str:
    if reading is None:
        return "(unread mail)"
    return reading.mail.message_id or "(no Message-ID)"


def database_away(exc: DBAPIError) -> bool:
    """Whether the database itself failed (gone, locked, out of space,
    a deadlock), as opposed to refusing one statement's values: after
    the first, nothing of the transaction can be trusted."""
    return exc.connection_invalidated or isinstance(
        exc, (OperationalError, InterfaceError))


def lost_a_deadlock(error: Exception) -> bool:
    """Whether PostgreSQL undid the transaction to break a deadlock or a
    serialization conflict (SQLSTATE class 40): worth one more go.
    Cases are locked in one order, but a bounce's case is known only
    once its report is read, and other writers (the sweep, the API)
    lock a case of their own first."""
    code = getattr(getattr(error, "orig", None), "sqlstate", None) or ""
    return isinstance(error, DBAPIError) and code.startswith("40")
