"""A gateway running in a thread of its own, delivery on demand, and
a case to write to.

Kept out of conftest so that test modules can import them by name.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

from casemail.cases.content import Content
from casemail.cli.stores import add_store
from casemail.db.engine import transaction
from casemail.gateway import Gateway
from casemail.outbound.delivery import DeliveryWorker
from casemail.runtime import Runtime


class GatewayThread:
    """A started ``Gateway`` whose event loop runs in a thread of its own."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.loop = asyncio.new_event_loop()
        self.gateway = Gateway(runtime, deliver=False, sweep=False)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started: Future[None] = Future()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.gateway.start())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self._started.set_exception(exc)
            return
        self._started.set_result(None)
        self.loop.run_forever()

    def start(self) -> GatewayThread:
        self._thread.start()
        self._started.result(timeout=30)
        return self

    @property
    def port(self) -> int:
        return self.gateway.smtp_port

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(
            self.gateway.stop(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()


def deliver_all(rt: Runtime) -> int:
    """Run delivery passes until nothing is due; the number handed over."""
    async def passes() -> int:
        worker = DeliveryWorker(rt.sessions, rt.settings, rt.clock, "e2e")
        total = 0
        try:
            for _ in range(100):
                done = await worker.run_once()
                if not done:
                    return total
                total += done
        finally:
            await worker.close()
        raise AssertionError("the outbox never emptied")
    return asyncio.run(passes())


CUSTOMER = "lena.fischer@gmail.example"


def open_case(rt: Runtime) -> int:
    """A Northwind Keys store with one team member, and a case in it."""
    with transaction(rt.sessions) as s:
        add_store(s, rt.clock, slug="northwind", name="Northwind Keys",
                  sender="support@northwind-keys.example",
                  members=["ana.kovac@northwind-keys.example"])
        case = rt.service.open_case(
            s, store_slug="northwind", order_ref="NW-10421",
            customer_address=CUSTOMER, customer_name="Lena Fischer",
            subject="Licence key never arrived",
            content=Content.typed("No key yet.", source="api"))
        return int(case.id)
