"""A sweep's cost follows the due cases, not all cases: the database
plans every query the sweep sends as a range of ``ix_cases_sweep``.

The statements are caught on their way to the driver, exactly as the
sweep sends them, and asked again under EXPLAIN.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, insert

from casemail.cases.states import State
from casemail.db import models as m
from casemail.idle import find_due

if TYPE_CHECKING:
    from conftest import Desk

DAY = dt.timedelta(days=1)
BULK = 20_000


def _fill(desk: Desk) -> None:
    """Many cases that are not due, and a few that are.

    Written in bulk, not through the service: only the shape of the
    table matters to the planner, and 20,000 cases through the service
    would take minutes.
    """
    desk.add_store("quick", idle_seconds=2 * 86400, warning_lead_seconds=0)
    desk.add_store("twin")  # the defaults again: asked with "lumen"
    now = desk.clock.now()
    with desk.rt.sessions() as s, s.begin():
        ids = {st.slug: st.id for st in s.query(m.Store)}
        rows = [_row(ids, n, now) for n in range(BULK)]
        s.execute(insert(m.Case), rows)
    with desk.rt.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


def _row(ids: dict[str, int], n: int, now: dt.datetime) -> dict[str, Any]:
    states = [State.AWAITING_MERCHANT, State.CLOSED, State.OPEN,
              State.AWAITING_CUSTOMER]
    state = states[n % 4]
    due = n % 2000 == 3  # ten of them, awaiting the customer for long
    last = now - (30 * DAY if due else dt.timedelta(minutes=n % 600))
    return dict(store_id=ids[("lumen", "quick", "twin")[n % 3]],
                order_ref=f"ORD-{n}", customer_address=f"c{n}@x.example",
                customer_name="", subject="s", state=state,
                priority="normal", unread=False, created_at=last,
                last_activity_at=last, staff_joined=False,
                customer_unreachable=False,
                warned_at=now - 5 * DAY if due and n % 4000 == 3 else None)


def _statements(desk: Desk) -> tuple[list[tuple[str, Any]], int]:
    caught: list[tuple[str, Any]] = []

    def catch(conn: Any, cursor: Any, statement: str, parameters: Any,
              context: Any, executemany: bool) -> None:
        if "FROM cases" in statement:
            caught.append((statement, parameters))

    event.listen(desk.rt.engine, "before_cursor_execute", catch)
    try:
        with desk.rt.sessions() as s:
            found = list(find_due(s, desk.clock.now()))
    finally:
        event.remove(desk.rt.engine, "before_cursor_execute", catch)
    return caught, len(found)


def _explain(desk: Desk, statement: str, parameters: Any) -> str:
    sqlite = desk.rt.engine.dialect.name == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
    raw = desk.rt.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(prefix + statement, parameters)
        rows = cur.fetchall()
    finally:
        raw.close()
    return "\n".join(str(r[-1] if sqlite else r[0]) for r in rows)


def test_every_sweep_query_is_an_index_range(desk: Desk) -> None:
    _fill(desk)
    statements, found = _statements(desk)
    assert found == 10
    # Two settings groups ("lumen" with "twin", and "quick"), two scans
    # each.
    assert len(statements) == 4
    for statement, parameters in statements:
        plan = _explain(desk, statement, parameters)
        if desk.rt.engine.dialect.name == "sqlite":
            assert re.search(r"SEARCH cases USING (COVERING )?INDEX "
                             r"ix_cases_sweep \(store_id=\? AND state=\? "
                             r"AND warned_at", plan), plan
            assert "SCAN cases" not in plan, plan
        else:
            assert "Index Cond: (" in plan, plan
            assert "ix_cases_sweep" in plan, plan
            assert "Seq Scan" not in plan, plan
