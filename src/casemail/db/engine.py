"""Engine and session set-up, and the migration entry point.

SQLite is the embedded default: WAL so readers never wait for the writer,
a busy timeout so concurrent writers queue instead of failing, and foreign
keys switched on (SQLite leaves them off). PostgreSQL needs nothing special;
the case service locks the case row it changes.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect, pool, text
from sqlalchemy.orm import Session, sessionmaker

from casemail.errors import ConfigError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")

# Execution option of engines whose sessions only read.
READ_ONLY = "casemail_read_only"

# Where Alembic records the migration a database is at (its default).
VERSION_TABLE = "alembic_version"


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False},
            **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN until the first
        # write, which lets two writers read the same row and both decide.
        # We emit BEGIN IMMEDIATE ourselves: one writer at a time, queued.
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Work that only reads (the RCPT check) says so and begins deferred,
    # so it never queues behind a writer for the write lock.
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class SQLiteWriter:
    """One writer at a time on a SQLite file, across threads and processes.

    SQLite lets one transaction write at a time. Writers that queue on its
    busy handler sleep in growing steps (up to 100 ms) and wake late; this
    lock hands the database over at once instead. Threads of one process
    take turns on a lock of their own; processes (``listener.workers``)
    on an advisory lock of a file beside the database, which the kernel
    passes to the next waiter the moment it is let go.
    """

    def __init__(self, path: str | None) -> None:
        self._threads = threading.Lock()
        self._path = f"{path}-writer.lock" if path else None
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> None:
        self._threads.acquire()
        if self._path is None:
            return
        try:
            fcntl.flock(self._file(), fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            if self._fd is not None and self._path is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def check(self) -> None:
        """Open the lock file now, so that a file that cannot be opened
        (made by another user, a directory in its place) stops the
        start with the reason, instead of failing every mail later."""
        if self._path is None:
            return
        try:
            self._file()
        except OSError as exc:
            raise ConfigError(
                f"cannot open the SQLite writer lock {self._path}: "
                f"{exc.strerror or exc}; it must be writable by the user "
                f"casemail runs as") from exc

    def _file(self) -> int:
        # A descriptor inherited across fork is the parent's open file,
        # whose lock the child would share: each process opens its own.
        if self._fd is None or self._pid != os.getpid():
            assert self._path is not None
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd


def writer_lock(engine: Engine) -> AbstractContextManager[object]:
    """What a writer holds around its transaction: ``SQLiteWriter`` on
    SQLite; nothing on PostgreSQL, whose row locks are enough."""
    if engine.dialect.name != "sqlite":
        return nullcontext()
    path = engine.url.database
    writer = SQLiteWriter(path if path and path != ":memory:" else None)
    writer.check()
    return writer


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def make_read_sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions for work that never writes (checked by nothing but care)."""
    return make_sessions(engine.execution_options(**{READ_ONLY: True}))


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with sessions() as session, session.begin():
        yield session


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Bring the schema at ``url`` up to the newest migration; say so
    only when there is one to run."""
    cfg = alembic_config(url)
    head = ScriptDirectory.from_config(cfg).get_current_head()
    current = schema_revision(url)
    if current == head:
        return
    if current is None:
        log.info("creating the database schema (revision %s)", head)
    else:
        log.info("migrating the database schema from %s to %s", current, head)
    command.upgrade(cfg, "head")


def schema_revision(url: str) -> str | None:
    """The migration the database at ``url`` is at; None when it has none.

    Read from Alembic's version table directly: Alembic's own way opens a
    migration context, which logs its set-up at INFO on every command.
    """
    engine = make_engine(url, poolclass=pool.NullPool)
    reader = engine.execution_options(**{READ_ONLY: True})
    try:
        with reader.connect() as conn, conn.begin():
            if not inspect(conn).has_table(VERSION_TABLE):
                return None
            return conn.scalar(
                text(f"SELECT version_num FROM {VERSION_TABLE}"))
    finally:
        engine.dispose()
