"""A running casemail: listeners, delivery worker and sweep in one loop.

``casemail serve`` runs one until SIGTERM; the demo and the end-to-end
tests run one inside their own event loop. Stopping closes the listeners
first (no new sessions), lets the messages in flight finish, then stops the
worker and the sweep between two passes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from contextlib import suppress
from typing import Any

from casemail.intake.listener import bound_port, start_listeners
from casemail.outbound.delivery import DeliveryWorker
from casemail.runtime import Runtime

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, runtime: Runtime, *, deliver: bool = True,
                 sweep: bool = True) -> None:
        self.rt = runtime
        self.deliver = deliver
        self.sweep = sweep
        self.servers: list[asyncio.base_events.Server] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"

    @property
    def smtp_port(self) -> int:
        return bound_port(self.servers[0])

    async def start(self) -> None:
        self.servers = await start_listeners(self.rt)
        if self.deliver:
            worker = DeliveryWorker(self.rt.sessions, self.rt.settings,
                                    self.rt.clock, self.worker_id)
            self._tasks.append(asyncio.create_task(
                worker.run_forever(self._stop), name="delivery"))
        if self.sweep:
            self._tasks.append(asyncio.create_task(
                self._sweep_forever(), name="sweep"))

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for server in self.servers:
            # Waits for the sessions in flight (their DATA is committed
            # or answered 4xx before the connection ends).
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), timeout=30)
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
