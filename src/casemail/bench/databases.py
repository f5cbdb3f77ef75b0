"""The databases a benchmark runs on, and the cases it writes into.

SQLite is a file in the run's own folder. PostgreSQL, when reachable, is
a schema of its own in the given database, dropped at the end, so a run
never touches anybody's data.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from casemail.addresses import Party
from casemail.bench.mails import Target
from casemail.cases.content import Content
from casemail.config import Settings, load_settings
from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.runtime import Runtime, build_runtime

log = logging.getLogger(__name__)

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SIGNING_KEY = "bench-signing-key-not-for-production"
# Replies spread over many stores, as on a platform: each merchant's
# team address gets its own share of the notifications.
STORES = 50


@dataclass(frozen=True)
class Database:
    name: str  # "sqlite" or "postgres"
    url: str


def settings_for(db: Database, data_dir: Path, **overrides: object) -> Settings:
    """Settings of a benchmark gateway: its own folder, a fixed key."""
    base: dict[str, object] = {
        "data_dir": data_dir, "database_url": db.url,
        "signing_keys": {"1": SIGNING_KEY}, "log_level": "INFO",
    }
    base.update(overrides)
    return load_settings(None, **base)


def env_for(db: Database, data_dir: Path) -> dict[str, str]:
    """The same settings as environment variables, for child processes.

    The benchmark sends each store's merchant far more replies in a few
    seconds than the hourly budget for automated mail allows; lifted, so
    every filed reply queues its notification as on a quieter day.
    """
    return {"CASEMAIL_DATA_DIR": str(data_dir),
            "CASEMAIL_DATABASE_URL": db.url,
            "CASEMAIL_SIGNING_KEYS": json.dumps({"1": SIGNING_KEY}),
            "CASEMAIL_BUDGET__PER_RECIPIENT": "1000000000",
            "CASEMAIL_BUDGET__PER_CASE_RECIPIENT": "1000000000"}


def postgres_reachable(url: str) -> bool:
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:
        log.warning("PostgreSQL at %s not reachable (%s): SQLite only",
                    url.rpartition("@")[2], type(exc).__name__)
        return False
    return True


@contextmanager
def database(name: str, workdir: Path, pg_url: str,
             label: str = "bench") -> Iterator[Database]:
    """A fresh, empty database of kind ``name`` for one measurement."""
    if name == "sqlite":
        path = workdir / f"{label}-{secrets.token_hex(4)}.db"
        yield Database("sqlite", f"sqlite:///{path}")
        return
    schema = "bench_" + secrets.token_hex(5)
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f"create schema {schema}"))
    sep = "&" if "?" in pg_url else "?"
    try:
        yield Database("postgres",
                       f"{pg_url}{sep}options=-csearch_path%3D{schema}")
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"drop schema if exists {schema} cascade"))
        admin.dispose()


def prepared_runtime(db: Database, data_dir: Path) -> Runtime:
    """A runtime on ``db`` with the schema made and the stores in it."""
    rt = build_runtime(settings_for(db, data_dir))
    with transaction(rt.sessions) as s:
        for k in range(STORES):
            store = m.Store(slug=f"shop{k}", name=f"Shop {k}",
                            sender_address=f"help@shop{k}.example",
                            created_at=rt.clock.now())
            store.members.append(m.TeamMember(
                address=_owner(k), name="Owner"))
            s.add(store)
    return rt


def _owner(k: int) -> str:
    return f"owner@shop{k}.example"


def open_cases(rt: Runtime, count: int) -> list[Target]:
    """``count`` cases the merchant has answered: awaiting the customer,
    the way most replies find them."""
    targets = []
    for n in range(count):
        k = n % STORES
        with transaction(rt.sessions) as s:
            case = rt.service.open_case(
                s, store_slug=f"shop{k}", order_ref=f"ORD-{n}",
                customer_address=f"ana{n}@customer.example",
                customer_name="Ana Customer", subject="Licence key missing",
                content=Content.typed("Where is my key?", source="api"))
            rt.service.add_message(
                s, case, party=Party.MERCHANT,
                author_address=_owner(k),
                content=Content.typed("Sent again.", source="api"))
            targets.append(Target(
                case.id, case.customer_address,
                rt.signer.reply_address(case.id, Party.CUSTOMER),
                rt.signer.message_id(case.id, Party.CUSTOMER)))
    return targets
