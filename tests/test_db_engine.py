"""SQLite transactions: writers take the write lock at BEGIN, readers
that say so do not, so a RCPT check never queues behind a writer."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event, text

from casemail.db.engine import make_engine, make_read_sessions, make_sessions


def test_writers_begin_immediate_and_readers_deferred(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    begun: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _c, _cur, stmt, *_a: begun.append(stmt)
                 if stmt.startswith("BEGIN") else None)
    try:
        with make_read_sessions(engine)() as s:
            s.execute(text("select 1"))
        with make_sessions(engine)() as s, s.begin():
            s.execute(text("select 1"))
    finally:
        engine.dispose()
    assert begun == ["BEGIN", "BEGIN IMMEDIATE"]


def test_a_reader_is_served_while_a_writer_holds_the_lock(
        tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(text("create table t (x int)"))
        writer = make_sessions(engine)()
        writer.begin()
        writer.execute(text("insert into t values (1)"))
        # BEGIN IMMEDIATE here would wait for the writer's whole timeout.
        with make_read_sessions(engine)() as s:
            assert s.execute(text("select count(*) from t")).scalar() == 0
        writer.rollback()
        writer.close()
    finally:
        engine.dispose()
