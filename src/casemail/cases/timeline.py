"""Writing one entry of a case's timeline."""

from __future__ import annotations

from enum import Enum

from sqlalchemy.orm import Session

from casemail.clock import Clock
from casemail.db import models as m
from casemail.db.rows import write_row


def record(s: Session, clock: Clock, case: m.Case, kind: str,
           party: str, actor: str = "", *, message: m.Message | None = None,
           outbox_id: int | None = None, **detail: object) -> None:
    """Add an event to ``case``'s timeline, in the caller's transaction.

    Written at once (``db.rows``), so the timeline's order is the order
    of these calls; the case and the message must be in the database.
    """
    write_row(
        s, m.Event, case_id=case.id, at=clock.now(), kind=kind,
        party=str(party), author_address=(actor or "")[:320],
        message_id=message.id if message is not None else None,
        outbox_id=outbox_id,
        detail={k: v.value if isinstance(v, Enum) else v
                for k, v in detail.items()})
