"""Shared test set-up: real databases, a pinned clock, settings in tmp.

Storage tests run against SQLite and PostgreSQL. PostgreSQL comes from
``CASEMAIL_TEST_POSTGRES_URL`` (default: the local server at
127.0.0.1:5432, database ``test``); each test gets a schema of its own.
Without a reachable server the PostgreSQL half is skipped — unless
``CASEMAIL_REQUIRE_POSTGRES=1`` (set by CI), where it fails instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, text

from casemail.clock import FrozenClock
from casemail.config import Settings, load_settings

if TYPE_CHECKING:
    from casemail.runtime import Runtime

PG_URL = os.environ.get(
    "CASEMAIL_TEST_POSTGRES_URL",
    "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("CASEMAIL_REQUIRE_POSTGRES") == "1"

_pg_ok: bool | None = None


def postgres_available() -> bool:
    global _pg_ok
    if _pg_ok is None:
        try:
            engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("select 1"))
            engine.dispose()
            _pg_ok = True
        except Exception as exc:
            if REQUIRE_PG:
                raise RuntimeError(f"PostgreSQL required but unreachable: "
                                   f"{exc}") from exc
            _pg_ok = False
    return _pg_ok


def _fresh_pg_schema() -> tuple[str, str]:
    schema = "t_" + secrets.token_hex(6)
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text(f"create schema {schema}"))
    engine.dispose()
    sep = "&" if "?" in PG_URL else "?"
    return schema, f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


def _drop_pg_schema(schema: str) -> None:
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text(f"drop schema if exists {schema} cascade"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'casemail.db'}"
        return
    if not postgres_available():
        pytest.skip("PostgreSQL not reachable")
    schema, url = _fresh_pg_schema()
    try:
        yield url
    finally:
        _drop_pg_schema(schema)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


def make_settings(tmp_path: Path, db_url: str, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "data_dir": tmp_path / "var",
        "database_url": db_url,
        "signing_keys": {"1": "test-signing-key-0123456789abcdef"},
    }
    base.update(overrides)
    return load_settings(None, **base)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url)


@pytest.fixture
def runtime(settings: Settings, clock: FrozenClock) -> Iterator[Runtime]:
    from casemail.runtime import build_runtime

    rt = build_runtime(settings, clock=clock)
    try:
        yield rt
    finally:
        rt.close()
