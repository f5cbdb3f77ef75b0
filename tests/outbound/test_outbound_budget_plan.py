"""The budget's count is one index range, not a scan of the outbox.

Every automated mail asks the budget first; a scan would make each
notification slower as the outbox grows (half a second a mail at 190 k
rows was measured before the index matched the query).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text

from casemail.db.engine import make_engine, migrate
from casemail.outbound.budget import _COUNTS


def test_budget_count_uses_the_recipient_index(db_url: str) -> None:
    migrate(db_url)
    engine = make_engine(db_url)
    since = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    query = _COUNTS.params(recipient="ana.kovac@example.test", since=since,
                           case_id=7, per_case=10, overall=200)
    compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                plan = " ".join(str(row[-1]) for row in conn.execute(
                    text(f"EXPLAIN QUERY PLAN {compiled}")))
            else:
                # On an empty table the planner prefers a scan; forbid it
                # to see whether the index can serve the query at all.
                conn.execute(text("SET enable_seqscan = off"))
                plan = " ".join(row[0] for row in conn.execute(
                    text(f"EXPLAIN {compiled}")))
    finally:
        engine.dispose()
    # Both counts, the one within a case and the overall one, use it.
    assert plan.count("ix_outbox_recipient_time") == 2, plan
