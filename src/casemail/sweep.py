"""Auto-close and its warning, over time: one sweep pass.

``casemail serve`` runs a pass every ``sweep_interval`` seconds and
``casemail sweep`` runs one. A pass lists the cases that may be due
(``casemail.idle``), then handles each in a short transaction of its own:
lock the case row, decide again against the clock whether it is still
due, warn or close it through the case service, commit. So:

- the case's change, its timeline entries and its queued mail commit
  together, or not at all: a pass killed half-way leaves every case done
  or untouched, and the next pass carries on;
- a reply that committed a second before the lock wins: the case is no
  longer awaiting the customer, or its idle stretch restarted;
- a second sweep, in another process on the same database, waits for the
  lock and then finds the warning already sent or the case closed.

A dry run lists what a pass would do and changes nothing. It may look
ahead (``as_of``): then it shows what the passes until that moment would
do if nobody wrote in the meantime. A real pass at any moment but the
clock's own is refused: it would close cases before the date their
warning named, and date the timeline and the mail wrongly.

XXX: a warning that the mail budget or a bounced address suppressed
still counts as the stretch's warning (the timeline shows both), so the
case closes on the date that mail would have named.

XXX: a store that turns auto-close off keeps its warned cases warned; if
it turns it on again weeks later, they close at the next pass, since the
date they were told has long passed. A fresh warning would be kinder.

XXX: a pass runs to its end; ``Gateway.stop`` waits for it, which with a
backlog of thousands of due cases can take minutes. ``limit`` bounds it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.idle import (
    Action,
    Candidate,
    Policy,
    Step,
    plan,
    promised_close,
)
from casemail.idle import find_due as _find_due
from casemail.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Planned:
    """One step a pass would take (dry runs) or was about to take."""

    case_id: int
    store: str
    action: Action
    at: dt.datetime  # when the step is taken
    close_at: dt.datetime  # when the case closes (a warning names it)


@dataclass
class SweepReport:
    as_of: dt.datetime
    dry_run: bool = False
    warned: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    # Listed as due, but a reply or another sweep got there first.
    skipped: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    planned: list[Planned] = field(default_factory=list)

    def summary(self) -> str:
        if self.dry_run:
            warns = sum(1 for p in self.planned if p.action == "warn")
            return (f"dry run as of {self.as_of:%Y-%m-%d %H:%M:%S} UTC: "
                    f"would warn {warns}, would close "
                    f"{len(self.planned) - warns}")
        return (f"sweep as of {self.as_of:%Y-%m-%d %H:%M:%S} UTC: "
                f"warned {len(self.warned)}, closed {len(self.closed)}, "
                f"no longer due {len(self.skipped)}, "
                f"failed {len(self.failed)}")


def run_sweep(runtime: Runtime, *, dry_run: bool = False,
              limit: int | None = None,
              as_of: dt.datetime | None = None) -> SweepReport:
    """One pass: warn and close every due case (at most ``limit``)."""
    now = runtime.clock.now()
    if as_of is not None and not dry_run:
        raise ValueError("a sweep at another moment than now can only be "
                         "a dry run")
    as_of = as_of or now
    report = SweepReport(as_of=as_of, dry_run=dry_run)
    report.planned = find_planned(runtime, min(now, as_of), as_of, limit)
    if dry_run:
        return report
    for step in report.planned:
        _handle(runtime, step.case_id, report)
    log.info("%s", report.summary())
    return report


def find_planned(runtime: Runtime, now: dt.datetime, as_of: dt.datetime,
                 limit: int | None) -> list[Planned]:
    """The steps due by ``as_of``, sweeping from ``now``; oldest first."""
    steps: dict[int, Planned] = {}
    with runtime.sessions() as s:
        stores = s.execute(select(m.Store.id, m.Store.slug))
        slugs = {store_id: slug for store_id, slug in stores}
        for cand, policy in _find_due(s, as_of, limit):
            step = _plan_candidate(s, cand, policy, now, as_of)
            if step is None or cand.case_id in steps:
                continue
            steps[cand.case_id] = Planned(cand.case_id, slugs[cand.store_id],
                                          step.action, step.at, step.close_at)
    ordered = sorted(steps.values(), key=lambda p: (p.at, p.case_id))
    return ordered if limit is None else ordered[:limit]


def _plan_candidate(s: Session, cand: Candidate, policy: Policy,
                    now: dt.datetime, as_of: dt.datetime) -> Step | None:
    promised = (promised_close(s, cand.case_id)
                if cand.warned_at is not None else None)
    return plan(policy, cand.state, cand.last_activity_at, cand.warned_at,
                promised, now=now, as_of=as_of)


def _handle(runtime: Runtime, case_id: int, report: SweepReport) -> None:
    """Lock, decide again, act, commit: one case, one transaction."""
    try:
        with transaction(runtime.sessions) as s:
            done = _act(runtime, s, case_id)
    except Exception as exc:
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            raise  # the database went away: the whole pass stops here
        log.exception("case %s: sweep step failed; retried next pass",
                      case_id)
        report.failed.append(case_id)
        return
    {"warn": report.warned, "close": report.closed,
     None: report.skipped}[done].append(case_id)


def _act(runtime: Runtime, s: Session, case_id: int) -> Action | None:
    service = runtime.service
    case = service.lock_case(s, case_id)
    # Decided again under the lock, with a fresh "now": whatever committed
    # while the pass was listing (a reply, a status change, another
    # sweep's warning) counts.
    now = runtime.clock.now()
    promised = (promised_close(s, case.id)
                if case.warned_at is not None else None)
    step = plan(Policy.of(case.store), case.state, case.last_activity_at,
                case.warned_at, promised, now=now)
    if step is None:
        log.info("case %s: no longer due, left as it is", case.id)
        return None
    if step.action == "warn":
        service.warn(s, case, step.close_at)
        log.info("case %s: warned, closes %s", case.id,
                 step.close_at.isoformat())
    else:
        service.auto_close(s, case)
        log.info("case %s: closed after its idle period", case.id)
    return step.action
