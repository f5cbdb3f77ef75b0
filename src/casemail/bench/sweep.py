"""Sweep: the time of one auto-close pass as the number of cases grows
while the number of due cases stays the same.

Cases are bulk-inserted (the case service would take hours for a
million): most are closed, awaiting the merchant, or awaiting a customer
who wrote recently; a fixed number are due, half of them a warning and
half the closing. Each step adds cases up to the next total and a fresh
set of due ones, then times one ``run_sweep``. A sweep whose time follows
the due cases stays flat across the steps.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import func, select

from casemail.bench import databases as dbs
from casemail.cases.states import State
from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.runtime import Runtime
from casemail.sweep import run_sweep

log = logging.getLogger(__name__)

DAY = dt.timedelta(days=1)
STORES = 10


@dataclass
class SweepTime:
    db: str
    cases: int
    due: int
    warned: int
    closed: int
    seconds: float
    prepare_seconds: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def run_sweeps(workdir: Path, pg_url: str | None,
               totals: tuple[int, ...] = (10_000, 100_000, 1_000_000),
               due: int = 100, pg_totals: tuple[int, ...] | None = None,
               ) -> list[SweepTime]:
    results = []
    plans = [("sqlite", totals)]
    if pg_url:
        plans.append(("postgres", pg_totals or totals))
    for name, steps in plans:
        with dbs.database(name, workdir, pg_url or "",
                                  "sweep") as db:
            rt = dbs.prepared_runtime(db, workdir / f"sweep-{name}")
            try:
                results += _steps(rt, name, steps, due)
            finally:
                rt.close()
    return results


def _steps(rt: Runtime, name: str, totals: tuple[int, ...],
           due: int) -> list[SweepTime]:
    _add_stores(rt)
    rng = random.Random(14)
    rows = Rows(rt)
    results = []
    have = 0
    for total in totals:
        started = time.perf_counter()
        _insert(rt, [rows.idle(rng, n) for n in range(have, total - due)])
        _insert(rt, [rows.due(n, total) for n in range(due)])
        have = total
        prepared = time.perf_counter() - started
        started = time.perf_counter()
        report = run_sweep(rt)
        seconds = time.perf_counter() - started
        result = SweepTime(name, _count(rt), due, len(report.warned),
                           len(report.closed), seconds, prepared)
        log.info("sweep on %s over %d cases (%d due): %.2fs (warned %d, "
                 "closed %d)", name, result.cases, due, seconds,
                 result.warned, result.closed)
        results.append(result)
    return results


def _add_stores(rt: Runtime) -> None:
    with transaction(rt.sessions) as s:
        for n in range(1, STORES):
            s.add(m.Store(slug=f"store{n}", name=f"Store {n}",
                          sender_address=f"help@store{n}.example",
                          created_at=rt.clock.now()))


COLUMNS = ("store_id", "order_ref", "customer_address", "customer_name",
           "subject", "state", "priority", "unread", "created_at",
           "last_activity_at", "warned_at", "closed_at", "staff_joined",
           "customer_unreachable")


class Rows:
    """Case rows as plain tuples, times already in the database's form,
    so a million of them go in by ``executemany`` or ``COPY``."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.now = rt.clock.now()
        column = m.Case.__table__.c.last_activity_at
        self._bind = column.type.bind_processor(rt.engine.dialect) or (
            lambda value: value)
        # A thousand distinct activity times is variety enough, and
        # keeps converting them out of the loop.
        self._recent = [self.at(-n / 100) for n in range(900)]  # 0–9 days
        self._old = [self.at(-n / 10) for n in range(600)]  # 0–60 days

    def at(self, days: float) -> object:
        return self._bind(self.now + days * DAY)

    def row(self, n: int, tag: str, state: State, activity: object,
            warned: object = None, closed: object = None) -> tuple[object, ...]:
        return (n % STORES + 1, f"{tag}-{n}", f"buyer{n}@customer.example",
                "Ana Customer", "Licence key", state.value, "normal", False,
                self.at(-30), activity, warned, closed, False, False)

    def idle(self, rng: random.Random, n: int) -> tuple[object, ...]:
        """A case no sweep should touch today."""
        pick = rng.random()
        if pick < 0.4:
            return self.row(n, "ORD", State.CLOSED, self.at(-40),
                            closed=self.at(-20))
        if pick < 0.6:
            return self.row(n, "ORD", State.AWAITING_MERCHANT,
                            self._old[n % len(self._old)])
        return self.row(n, "ORD", State.AWAITING_CUSTOMER,
                        self._recent[n % len(self._recent)])

    def due(self, n: int, total: int) -> tuple[object, ...]:
        """Half due a warning (idle 12 of 14 days), half the closing
        (warned five days ago, idle 20 days)."""
        tag = f"DUE{total}"
        if n % 2:
            return self.row(n, tag, State.AWAITING_CUSTOMER, self.at(-12))
        return self.row(n, tag, State.AWAITING_CUSTOMER, self.at(-20),
                        warned=self.at(-5))


def _insert(rt: Runtime, rows: list[tuple[object, ...]]) -> None:
    conn = rt.engine.raw_connection()
    try:
        cur = conn.cursor()
        names = ", ".join(COLUMNS)
        if rt.engine.dialect.name == "postgresql":
            with cur.copy(f"COPY cases ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" * len(COLUMNS))
            cur.execute("BEGIN")
            cur.executemany(f"INSERT INTO cases ({names}) VALUES ({marks})",
                            rows)
        conn.commit()
    finally:
        conn.close()


def _count(rt: Runtime) -> int:
    with rt.sessions() as s:
        return s.scalar(select(func.count(m.Case.id))) or 0
