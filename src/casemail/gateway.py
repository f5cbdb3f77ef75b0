"""A running casemail: listeners, delivery worker and sweep in one loop.

``casemail serve`` runs one until SIGTERM; the demo and the end-to-end
tests run one inside their own event loop. Stopping closes the listeners
first (no new sessions), answers ``421`` to any new transaction on the
sessions still open (RFC 5321 3.8), waits until every message in flight
has been committed and answered, closes those sessions, then stops the
worker, the sweep and the quarantine retries between two passes. Nothing
is lost by stopping at any other moment either: a message is answered
``250`` only after its commit, and the outbox lives in the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import weakref
from contextlib import suppress
from typing import Any

from aiosmtpd.smtp import SMTP

from casemail.intake import replies
from casemail.intake.listener import (
    Handler,
    Sockets,
    bound_port,
    start_listeners,
)
from casemail.intake.pipeline import Pipeline
from casemail.mime.filestore import remove_stale_parts
from casemail.outbound.delivery import DeliveryWorker
from casemail.runtime import Runtime

log = logging.getLogger(__name__)

# How long a stop waits for the mail in flight before it gives up on it
# (the sender then gets no answer and tries again: nothing is lost).
DRAIN_TIMEOUT = 30.0


class Drain:
    """The messages in flight, and whether new ones are still welcome."""

    def __init__(self) -> None:
        self.closing = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def enter(self, server: SMTP) -> bool:
        self.sessions.add(server)
        if self.closing:
            return False
        self.in_flight += 1
        self._idle.clear()
        return True

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def close_sessions(self) -> None:
        # XXX: a session known only from its RCPT or DATA hooks is closed
        # here; one that has sent nothing past EHLO is not seen, and is cut
        # only when the process exits (Python 3.11's Server has no
        # close_clients). Its sender has nothing in flight, so loses nothing.
        for server in list(self.sessions):
            if server.transport is not None:
                server.transport.close()


class DrainingHandler(Handler):
    """The listener's handler, counted in and out by a ``Drain``."""

    def __init__(self, *args: Any, drain: Drain, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drain = drain

    async def handle_RCPT(self, server: SMTP, *args: Any) -> str:
        self.drain.sessions.add(server)
        if self.drain.closing:
            return replies.SHUTTING_DOWN
        return await super().handle_RCPT(server, *args)

    async def handle_DATA(self, server: SMTP, *args: Any) -> str:
        if not self.drain.enter(server):
            return _per_recipient(self, args, replies.SHUTTING_DOWN)
        try:
            return await super().handle_DATA(server, *args)
        finally:
            self.drain.leave()


def _per_recipient(handler: Handler, args: tuple[Any, ...], reply: str) -> str:
    # LMTP answers DATA once per recipient (RFC 2033 4.2).
    if not handler.lmtp:
        return reply
    envelope = args[1]
    return "\r\n".join([reply] * max(1, len(envelope.rcpt_tos)))


class Gateway:
    def __init__(self, runtime: Runtime, *, deliver: bool = True,
                 sweep: bool = True, sockets: Sockets | None = None) -> None:
        self.rt = runtime
        self.deliver = deliver
        self.sweep = sweep
        self.sockets = sockets  # bound before a fork (casemail.workers)
        self.servers: list[asyncio.base_events.Server] = []
        self.drain = Drain()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"

    @property
    def smtp_port(self) -> int:
        return bound_port(self.servers[0])

    async def start(self) -> None:
        self.servers = await start_listeners(
            self.rt, make_handler=self._handler, sockets=self.sockets)
        if self.deliver:
            # One relay connection per worker: while one waits for the
            # relay's answer, the others send (aiosmtplib does not pipeline).
            for n in range(self.rt.settings.relay.connections):
                worker = DeliveryWorker(self.rt.sessions, self.rt.settings,
                                        self.rt.clock, f"{self.worker_id}/{n}")
                self._tasks.append(asyncio.create_task(
                    worker.run_forever(self._stop), name=f"delivery-{n}"))
        if self.sweep:
            self._tasks.append(asyncio.create_task(
                self._sweep_forever(), name="sweep"))
            # Once a start, by one worker: a crash is what leaves them.
            # A thread of its own that stopping does not wait for: a
            # large tree takes seconds to walk, and each removal is
            # whole or not done.
            threading.Thread(target=remove_stale_parts,
                             args=(self.rt.settings.files_dir,),
                             name="stale-parts", daemon=True).start()
        self._tasks.append(asyncio.create_task(
            self._retry_forever(), name="quarantine"))

    def _handler(self, *args: Any, **kwargs: Any) -> Handler:
        return DrainingHandler(*args, drain=self.drain, **kwargs)

    async def stop(self) -> None:
        for server in self.servers:
            server.close()  # no new sessions
        self.drain.closing = True  # 421 to new transactions
        in_flight = self.drain.in_flight
        if not await self.drain.wait_idle(DRAIN_TIMEOUT):
            log.warning("stopping with %s messages still in flight; their "
                        "senders will try again", self.drain.in_flight)
        elif in_flight:
            log.info("finished the %s messages in flight", in_flight)
        # The answers are written; closing flushes them, then hangs up.
        self.drain.close_sessions()
        self._stop.set()
        for task in self._tasks:
            with suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=30)

    async def _sweep_forever(self) -> None:
        from casemail.sweep import run_sweep  # the sweep is optional wiring

        interval = self.rt.settings.sweep_interval
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(run_sweep, self.rt)
            except Exception:
                log.exception("sweep pass failed; next pass in %ss", interval)
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=interval)

    async def _retry_forever(self) -> None:
        """Apply quarantined mail again, a pass per sweep interval, until
        each one is filed or reaches ``max_processing_attempts``."""
        pipeline = Pipeline(self.rt)
        interval = self.rt.settings.sweep_interval
        while not self._stop.is_set():
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=interval)
            if self._stop.is_set():
                return
            try:
                outcomes = await asyncio.to_thread(pipeline.retry_quarantined)
            except Exception:
                log.exception("quarantine pass failed; next in %ss", interval)
                continue
            filed = sum(o.status != "quarantined" for o in outcomes)
            if outcomes:
                log.info("quarantine pass: %s of %s mails applied", filed,
                         len(outcomes))
