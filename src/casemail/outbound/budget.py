"""One rate limit for everything casemail sends on its own.

Auto-replies, notifications, close warnings and refused-attachment notices
all ask ``allow`` before they are queued. Two limits apply within a sliding
window (``settings.budget``, defaults: 10 mails to one recipient about one
case and 200 mails to one recipient overall per hour, which a busy
store's team address must be able to receive):

- per recipient and case, so a loop with one correspondent (two robots
  answering each other through a case) dies out quickly;
- per recipient overall, so one address is never flooded across cases.

The database is the memory: we count the automated outbox rows in the
window that were not themselves suppressed, so the limit holds across
restarts and across several instances sharing one database. Mail a person
wrote (a merchant's reply, a staff message) is never counted or stopped.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from casemail.config import Settings
from casemail.db.models import Outbox


def allow(session: Session, *, recipient: str, case_id: int | None,
          now: dt.datetime, settings: Settings) -> str | None:
    """None when another automated mail to ``recipient`` may go out now,
    else the reason it may not (recorded as the suppressed row's error).

    XXX: two transactions checking at the same instant on PostgreSQL can
    both pass and overshoot a limit by one; SQLite's BEGIN IMMEDIATE
    serialises them. A row lock per recipient would close this, at a cost
    on every queued mail that the limit's purpose does not justify.
    """
    limits = settings.budget
    since = now - dt.timedelta(seconds=limits.window)
    window = _window(recipient, since)
    if case_id is not None:
        in_case = _count(session, window.where(Outbox.case_id == case_id),
                         limits.per_case_recipient)
        if in_case >= limits.per_case_recipient:
            return (f"budget: {in_case} automated mails to this recipient "
                    f"about this case within {limits.window:.0f}s")
    overall = _count(session, window, limits.per_recipient)
    if overall >= limits.per_recipient:
        return (f"budget: {overall} automated mails to this recipient "
                f"within {limits.window:.0f}s")
    return None


def _count(session: Session, rows: Select, limit: int) -> int:
    """How many rows, counting no further than ``limit``: a merchant who
    gets hundreds of notifications an hour must not make each one slower."""
    return session.scalar(
        select(func.count()).select_from(rows.limit(limit).subquery())) or 0


def _window(recipient: str, since: dt.datetime) -> Select:
    # Local parts are compared without case: nearly every mail system
    # treats them so, and a loop must not escape by changing case.
    return select(Outbox.id).where(
        func.lower(Outbox.recipient) == recipient.strip().lower(),
        Outbox.automated.is_(True),
        Outbox.status != "suppressed",
        Outbox.created_at >= since,
    )
