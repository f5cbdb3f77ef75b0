"""Wiring: one object holding everything a running casemail needs.

The command line, the listener, the sweep and the tests all build their
pieces here from one ``Settings``, so there is one way to start.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sqlalchemy import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from casemail.addresses import Signer
from casemail.cases.service import CaseService
from casemail.clock import Clock, SystemClock
from casemail.config import Settings, ensure_signing_keys
from casemail.db.engine import (
    make_engine,
    make_read_sessions,
    make_sessions,
    migrate,
)
from casemail.errors import ConfigError
from casemail.outbound.compose import Composer


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    engine: Engine
    sessions: sessionmaker[Session]
    signer: Signer
    composer: Composer
    service: CaseService

    @functools.cached_property
    def read_sessions(self) -> sessionmaker[Session]:
        """Sessions that only read: on SQLite they do not wait for writers."""
        return make_read_sessions(self.engine)

    def close(self) -> None:
        self.engine.dispose()


def make_signer(settings: Settings) -> Signer:
    notify_local = settings.from_address.rpartition("@")[0]
    return Signer(settings.signing_keys, settings.reply_domain,
                  reply_local=settings.reply_local_part,
                  bounce_local=settings.bounce_local_part,
                  fallback_locals=(notify_local,))


def open_database(url: str, *, migrate_db: bool = True) -> Engine:
    """The engine for ``url``; a URL that cannot be used is a ConfigError
    that says why, not a driver's traceback."""
    try:
        if migrate_db:
            migrate(url)
        return make_engine(url)
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(
            f"database_url {_shown(url)} is not one casemail can use "
            f"({exc}); use sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/DB") from exc
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise ConfigError(
            f"cannot reach the database at {_shown(url)}: {reason}; check "
            "database_url and that the server is running") from exc


def _shown(url: str) -> str:
    """The URL without its password, fit to print."""
    try:
        return repr(make_url(url).render_as_string(hide_password=True))
    except ArgumentError:
        return repr(url.split("@")[-1])


def build_runtime(settings: Settings, *, clock: Clock | None = None,
                  migrate_db: bool = True) -> Runtime:
    settings = ensure_signing_keys(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = open_database(settings.db_url, migrate_db=migrate_db)
    clock = clock or SystemClock()
    signer = make_signer(settings)
    composer = Composer(settings, signer, settings.templates_dir)
    service = CaseService(settings, signer, clock, composer)
    return Runtime(settings, clock, engine, make_sessions(engine), signer,
                   composer, service)
