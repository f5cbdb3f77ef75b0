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

from typing import Any

from sqlalchemy import Integer, Select, String, bindparam, func, select
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
    in_case, overall = session.connection().execute(_COUNTS, {
        "recipient": recipient.strip().lower(),
        "since": now - dt.timedelta(seconds=limits.window),
        # No case: a NULL id matches no row, so that count stays 0.
        "case_id": case_id,
        "per_case": limits.per_case_recipient,
        "overall": limits.per_recipient,
    }).one()
    if in_case >= limits.per_case_recipient:
        return (f"budget: {in_case} automated mails to this recipient "
                f"about this case within {limits.window:.0f}s")
    if overall >= limits.per_recipient:
        return (f"budget: {overall} automated mails to this recipient "
                f"within {limits.window:.0f}s")
    return None


def _counts() -> Select[Any]:
    """Both counts in one statement, each stopping at its limit: a merchant
    who gets hundreds of notifications an hour must not make each one
    slower. Built once: every queued mail runs it, and SQLAlchemy then
    reuses the compiled form without walking the statement again."""
    # Local parts are compared without case: nearly every mail system
    # treats them so, and a loop must not escape by changing case.
    window = select(Outbox.id).where(
        func.lower(Outbox.recipient) == bindparam("recipient", type_=String),
        Outbox.automated.is_(True),
        Outbox.status != "suppressed",
        Outbox.created_at >= bindparam("since"),
    )

    def count(rows: Select[Any], limit: str) -> Any:
        capped = rows.limit(bindparam(limit, type_=Integer))
        return select(func.count()).select_from(
            capped.subquery()).scalar_subquery()

    in_case = window.where(Outbox.case_id == bindparam("case_id"))
    return select(count(in_case, "per_case"), count(window, "overall"))


_COUNTS = _counts()
