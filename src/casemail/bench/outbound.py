"""Outbound: notifications per second from the outbox to a local relay.

The outbox is filled with real notifications (one composed by the case
service, then copied with fresh Message-IDs, so preparing many is quick),
the relay is the bare discarding server in a process of its own, and
casemail's delivery workers run here as ``serve`` runs them (one per
relay connection, each reusing its connection), passes back to back,
until the outbox is empty.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import func, insert, select

from casemail.bench import databases as dbs
from casemail.bench.process import ServerProcess
from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.outbound.delivery import DeliveryWorker
from casemail.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class Outbound:
    db: str
    connections: int
    mails: int
    sent: int
    seconds: float
    rate: float
    mail_kb: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def fill_outbox(rt: Runtime, count: int) -> float:
    """``count`` queued notifications; the mean size in KB."""
    dbs.open_cases(rt, 1)
    with transaction(rt.sessions) as s:
        model = s.scalars(select(m.Outbox).order_by(m.Outbox.id)).first()
        assert model is not None, "opening a case queued no mail"
        s.execute(m.Outbox.__table__.delete())
        now = rt.clock.now()
        rows = [_copy(model, n, now) for n in range(count)]
        for start in range(0, count, 5000):
            s.execute(insert(m.Outbox), rows[start:start + 5000])
        return len(model.data) / 1024


def _copy(model: m.Outbox, n: int, now: dt.datetime) -> dict[str, object]:
    message_id = f"<bench-out-{n}@reply.example.test>"
    data = model.data.replace(model.message_id.encode(), message_id.encode())
    return {"case_id": model.case_id, "template": model.template,
            "recipient": model.recipient, "party": model.party,
            "automated": model.automated, "message_id": message_id,
            "envelope_from": model.envelope_from, "subject": model.subject,
            "data": data, "status": "queued", "attempts": 0,
            "created_at": now, "next_attempt_at": now,
            "deadline": model.deadline, "claimed_by": ""}


async def _drain(workers: list[DeliveryWorker]) -> None:
    async def one(worker: DeliveryWorker) -> None:
        try:
            while await worker.run_once():
                pass
        finally:
            await worker.close()

    await asyncio.gather(*(one(w) for w in workers))


def run_outbound(workdir: Path, pg_url: str | None, count: int = 2000,
                 runs: int = 1) -> list[Outbound]:
    """Per database, the run of median rate among ``runs``, each on a
    fresh database: one run moves with what else the machine does."""
    results = []
    names = ["sqlite"] + (["postgres"] if pg_url else [])
    with ServerProcess("ceiling") as relay:
        for name in names:
            tries = []
            for n in range(runs):
                with dbs.database(name, workdir, pg_url or "",
                                  "outbound") as db:
                    tries.append(_one(db, workdir / f"out-{name}-{n}",
                                      relay.port, count))
            tries.sort(key=lambda o: o.rate)
            results.append(tries[len(tries) // 2])
    return results


def _one(db: dbs.Database, data_dir: Path, relay_port: int,
         count: int) -> Outbound:
    rt = dbs.prepared_runtime(db, data_dir)
    try:
        kb = fill_outbox(rt, count)
        settings = rt.settings.model_copy(update={
            "relay": rt.settings.relay.model_copy(update={
                "host": "127.0.0.1", "port": relay_port})})
        # As 'serve' runs them: one worker per relay connection.
        workers = [
            DeliveryWorker(rt.sessions, settings, rt.clock, f"bench/{n}")
            for n in range(settings.relay.connections)]
        with _logging_as_serve(data_dir / "delivery.log"):
            started = time.perf_counter()
            asyncio.run(_drain(workers))
            seconds = time.perf_counter() - started
        with rt.sessions() as s:
            sent = s.scalar(select(func.count(m.Outbox.id)).where(
                m.Outbox.status == "sent")) or 0
    finally:
        rt.close()
    result = Outbound(db.name, len(workers), count, sent, seconds,
                      sent / seconds, kb)
    log.info("outbound on %s: %d of %d sent in %.2fs: %.0f/s", db.name,
             sent, count, seconds, result.rate)
    return result


@contextmanager
def _logging_as_serve(path: Path) -> Iterator[None]:
    """The workers log each mail's outcome at INFO, as under 'serve'.

    The benchmark quiets casemail's loggers for its own output; the line
    written for every delivered mail is part of what delivery costs, so it
    is written here too, to a file in the work folder like the servers'.
    """
    logger = logging.getLogger("casemail.outbound")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    before = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(before[0])
        logger.propagate = before[1]
