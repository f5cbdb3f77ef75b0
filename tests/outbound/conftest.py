"""Fixtures for the outbound tests: a real database (SQLite, and
PostgreSQL in a schema of its own per module), settings, signer, clock and
a store with a case in it."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from casemail.addresses import Signer
from casemail.clock import FrozenClock
from casemail.config import Settings, load_settings
from casemail.db import models as m
from casemail.db.engine import make_engine, make_sessions, migrate
from casemail.outbound.compose import Composer

PG_URL = os.environ.get("CASEMAIL_TEST_POSTGRES_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TABLES = ["events", "attachments", "messages", "raw_mails", "outbox",
          "cases", "team_members", "stores"]


def _sqlite(tmp: object) -> Iterator[str]:
    url = f"sqlite:///{tmp}/casemail.db"
    migrate(url)
    yield url


def _postgres() -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:  # pragma: no cover
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    try:
        migrate(url)
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield from _sqlite(tmp_path_factory.mktemp("db"))
    else:
        yield from _postgres()


@pytest.fixture(scope="module")
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: sa.Engine) -> Iterator[sessionmaker[Session]]:
    yield make_sessions(engine)
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(sa.text(f"DELETE FROM {table}"))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC))


@pytest.fixture
def settings(tmp_path: object) -> Settings:
    return load_settings(
        data_dir=str(tmp_path), reply_domain="reply.example.test",
        signing_keys={"1": "outbound-test-key-0123456789"},
        platform_name="Shopfront Platform")


@pytest.fixture
def signer(settings: Settings) -> Signer:
    return Signer(settings.signing_keys, settings.reply_domain)


@pytest.fixture
def composer(settings: Settings, signer: Signer,
             clock: FrozenClock) -> Composer:
    return Composer(settings, signer, clock=clock)


@pytest.fixture
def deps(composer: Composer, signer: Signer, clock: FrozenClock,
         settings: Settings) -> dict[str, object]:
    """What queue_mail needs besides the session, as keyword arguments."""
    return {"composer": composer, "signer": signer, "clock": clock,
            "settings": settings}


def make_case(session: Session, clock: FrozenClock, *,
              customer: str = "zoe.mertens@customer.example",
              customer_name: str = "Zoë Mertens",
              subject: str = "Licence key never arrived",
              slug: str = "pixel-forge") -> m.Case:
    """A store and a case of it, added to ``session`` and flushed."""
    now = clock.now()
    store = session.scalar(sa.select(m.Store).where(m.Store.slug == slug))
    if store is None:
        store = m.Store(slug=slug, name="Pixel Forge Ltd",
                        sender_address="help@pixelforge.example",
                        auto_reply_text="Thanks! We answer within a day.",
                        created_at=now)
        session.add(store)
        session.flush()
    case = m.Case(store_id=store.id, order_ref="PF-10042",
                  customer_address=customer, customer_name=customer_name,
                  subject=subject, state="awaiting_merchant",
                  priority="high", created_at=now, last_activity_at=now)
    session.add(case)
    session.flush()
    return case


@pytest.fixture(name="make_case")
def make_case_fixture() -> Callable[..., m.Case]:
    return make_case
