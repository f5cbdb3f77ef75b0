"""When a case that waits on its customer is due a warning or its closing.

The rules are per store (``Store.auto_close_enabled``, ``idle_seconds``,
``warning_lead_seconds``) and pure: ``plan`` looks at one case's state,
last activity and warning and answers what a sweep does with it, and when.
``find_due`` asks the database for the cases that may be due; it never
decides alone, ``plan`` has the last word on every row.

    warning  awaiting customer, no warning yet in this idle stretch, and
             idle for ``idle_seconds - warning_lead_seconds``
    close    awaiting customer, idle for ``idle_seconds``, warned at least
             ``warning_lead_seconds`` ago, and not before the date that
             the warning named

A warning names ``max(end of the idle period, now + lead)``: a warning
sent late (the sweep was stopped, the store just turned auto-close on)
still gives the customer the whole lead time to answer. A lead of zero
means no warning at all: the case closes when its idle period ends.

Cost: stores are grouped by their settings, and each group costs two
range scans of ``ix_cases_sweep`` (store, state, warned_at,
last_activity_at) whose rows are, with the rare exception of a warning
sent late, exactly the due cases.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from casemail.cases.states import State
from casemail.db import models as m

log = logging.getLogger(__name__)

Action = Literal["warn", "close"]

# Store ids per IN list: far below every backend's parameter limit.
_CHUNK = 500


@dataclass(frozen=True)
class Policy:
    """One store's auto-close settings, as durations."""

    idle: dt.timedelta
    lead: dt.timedelta

    @classmethod
    def of(cls, store: m.Store) -> Policy | None:
        """The store's policy, or None when nothing closes by itself."""
        if not store.auto_close_enabled:
            return None
        return cls.from_seconds(store.idle_seconds, store.warning_lead_seconds)

    @classmethod
    def from_seconds(cls, idle: int, lead: int) -> Policy | None:
        if idle <= 0:
            return None  # a store cannot mean "close at once"; see find_due
        return cls(dt.timedelta(seconds=idle),
                   dt.timedelta(seconds=max(lead, 0)))


@dataclass(frozen=True)
class Step:
    """What a sweep does with one case: ``action`` at ``at``; the case
    closes at ``close_at`` (for a warning: the date the mail names)."""

    action: Action
    at: dt.datetime
    close_at: dt.datetime


def plan(policy: Policy | None, state: str, last_activity: dt.datetime,
         warned_at: dt.datetime | None, promised: dt.datetime | None, *,
         now: dt.datetime, as_of: dt.datetime | None = None) -> Step | None:
    """The step a sweep takes with the case, or None if it has none.

    ``now`` is when sweeping starts; with a later ``as_of`` the answer is
    what the passes between the two would have done by ``as_of`` if
    nobody wrote in the meantime (a warning, then perhaps the closing).
    """
    as_of = as_of or now
    if policy is None or state != State.AWAITING_CUSTOMER:
        return None
    idle_end = last_activity + policy.idle
    if warned_at is None and policy.lead:
        warn_at = max(idle_end - policy.lead, now)
        if warn_at > as_of:
            return None
        close_at = max(idle_end, warn_at + policy.lead)
        if close_at <= as_of:
            return Step("close", close_at, close_at)
        return Step("warn", warn_at, close_at)
    close_at = idle_end
    if warned_at is not None:
        close_at = max(idle_end, warned_at + policy.lead, promised or idle_end)
    if close_at > as_of:
        return None
    return Step("close", max(close_at, now), close_at)


def promised_close(s: Session, case_id: int) -> dt.datetime | None:
    """The closing date the latest warning named to the customer.

    Called only for a warned case: its latest warning is the one of the
    current idle stretch (activity clears ``warned_at``).
    """
    detail: dict[str, Any] | None = s.scalar(
        select(m.Event.detail)
        .where(m.Event.case_id == case_id, m.Event.kind == "warning_sent")
        .order_by(m.Event.id.desc()).limit(1))
    if not detail or not detail.get("close_at"):
        return None
    return dt.datetime.fromisoformat(detail["close_at"])


@dataclass(frozen=True)
class Candidate:
    case_id: int
    store_id: int
    state: str
    last_activity_at: dt.datetime
    warned_at: dt.datetime | None


def find_due(s: Session, as_of: dt.datetime,
             limit: int | None = None) -> Iterator[tuple[Candidate, Policy]]:
    """Every case that may be due by ``as_of``, with its store's policy.

    Each query returns its rows in index order (per store, oldest
    activity or oldest warning first); with ``limit`` it stops there, and
    the caller cuts the total. There is no ORDER BY on purpose: with one,
    SQLite prefers ``ix_cases_state_activity`` for its order and scans
    every old case of every store.
    """
    for policy, store_ids in store_groups(s):
        for query in due_queries(policy, store_ids, as_of):
            if limit is not None:
                query = query.limit(limit)
            for row in s.execute(query):
                yield Candidate(*row), policy


def store_groups(s: Session) -> Iterator[tuple[Policy, list[int]]]:
    """The stores that auto-close, in chunks sharing one policy.

    Stores are few next to cases, and most keep the defaults, so this is
    usually a single group.
    """
    groups: dict[Policy, list[int]] = {}
    rows = s.execute(select(m.Store.id, m.Store.slug, m.Store.idle_seconds,
                            m.Store.warning_lead_seconds)
                     .where(m.Store.auto_close_enabled.is_(True)))
    for store_id, slug, idle, lead in rows:
        policy = Policy.from_seconds(idle, lead)
        if policy is None:
            log.warning("store %s: idle period %ss is not positive; "
                        "its cases do not close by themselves", slug, idle)
            continue
        groups.setdefault(policy, []).append(store_id)
    for policy, ids in groups.items():
        for start in range(0, len(ids), _CHUNK):
            yield policy, ids[start:start + _CHUNK]


def due_queries(policy: Policy, store_ids: list[int],
                as_of: dt.datetime) -> list[Select[Any]]:
    """The range scans that find one group's due cases by ``as_of``."""
    idle_cutoff = as_of - policy.idle
    queries = [
        # Warned long enough ago and idle long enough: close.
        _awaiting(store_ids).where(
            m.Case.warned_at <= as_of - policy.lead,
            m.Case.last_activity_at <= idle_cutoff),
    ]
    # Not warned yet: due a warning, or (with no lead) the closing.
    unwarned_cutoff = idle_cutoff + policy.lead
    queries.append(_awaiting(store_ids).where(
        m.Case.warned_at.is_(None),
        m.Case.last_activity_at <= unwarned_cutoff))
    return queries


def _awaiting(store_ids: list[int]) -> Select[Any]:
    return (select(m.Case.id, m.Case.store_id, m.Case.state,
                   m.Case.last_activity_at, m.Case.warned_at)
            .where(m.Case.store_id.in_(store_ids),
                   m.Case.state == State.AWAITING_CUSTOMER.value))
