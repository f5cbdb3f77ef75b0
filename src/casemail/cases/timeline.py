"""Writing one entry of a case's timeline."""

from __future__ import annotations

from enum import Enum

from sqlalchemy.orm import Session

from casemail.clock import Clock
from casemail.db import models as m


def record(s: Session, clock: Clock, case: m.Case, kind: str,
           party: str, actor: str = "", *, message: m.Message | None = None,
           outbox_id: int | None = None, **detail: object) -> m.Event:
    """Add an event to ``case``'s timeline, in the caller's transaction."""
    event = m.Event(
        case_id=case.id, at=clock.now(), kind=kind, party=str(party),
        author_address=actor or "",
        # By relationship, not by id: the message may not be flushed yet,
        # and the flush that writes both puts them in order.
        message=message, outbox_id=outbox_id,
        detail={k: v.value if isinstance(v, Enum) else v
                for k, v in detail.items()})
    s.add(event)
    return event
