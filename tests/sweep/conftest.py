"""A desk for the sweep tests: stores and cases made through the case
service on a real database, the pinned clock, and what landed in the
outbox and on the timeline."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from casemail.addresses import Party
from casemail.cases.content import Content
from casemail.clock import FrozenClock
from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.runtime import Runtime
from casemail.sweep import SweepReport, run_sweep

DAY = dt.timedelta(days=1)


@dataclass
class Desk:
    rt: Runtime
    clock: FrozenClock

    def add_store(self, slug: str = "lumen", **settings: object) -> None:
        with transaction(self.rt.sessions) as s:
            store = m.Store(slug=slug, name=f"{slug.title()} Shop",
                            sender_address=f"help@{slug}.example",
                            created_at=self.clock.now(), **settings)
            store.members.append(m.TeamMember(
                address=f"owner@{slug}.example", name="Owner"))
            s.add(store)

    def open_waiting(self, slug: str = "lumen", n: int = 1) -> int:
        """A case whose merchant has answered: awaiting the customer."""
        with transaction(self.rt.sessions) as s:
            case = self.rt.service.open_case(
                s, store_slug=slug, order_ref=f"ORD-{n}",
                customer_address=f"buyer{n}@customer.example",
                customer_name="Ana Lima", subject="Licence key missing",
                content=Content.typed("Where is my key?", source="api"))
            case_id = case.id
        self.merchant_reply(case_id)
        return case_id

    def _write(self, case_id: int, party: Party, address: str) -> None:
        with transaction(self.rt.sessions) as s:
            case = self.rt.service.lock_case(s, case_id)
            self.rt.service.add_message(
                s, case, party=party, author_address=address,
                content=Content.typed("Any news?", source="api"))

    def merchant_reply(self, case_id: int) -> None:
        slug = self.case(case_id).store.slug
        self._write(case_id, Party.MERCHANT, f"owner@{slug}.example")

    def customer_reply(self, case_id: int) -> None:
        self._write(case_id, Party.CUSTOMER, self.case(case_id)
                    .customer_address)

    def sweep(self, **kwargs: object) -> SweepReport:
        return run_sweep(self.rt, **kwargs)  # type: ignore[arg-type]

    def at(self, when: dt.datetime) -> Desk:
        self.clock.set(when)
        return self

    # -- looking --------------------------------------------------------

    def case(self, case_id: int) -> m.Case:
        with self.rt.sessions() as s:
            case = s.get(m.Case, case_id)
            assert case is not None
            _ = case.store
            return case

    def mails(self, case_id: int, template: str) -> int:
        with self.rt.sessions() as s:
            return s.scalar(select(func.count(m.Outbox.id)).where(
                m.Outbox.case_id == case_id,
                m.Outbox.template == template)) or 0

    def events(self, case_id: int, kind: str) -> list[m.Event]:
        with self.rt.sessions() as s:
            return list(s.scalars(select(m.Event).where(
                m.Event.case_id == case_id, m.Event.kind == kind)
                .order_by(m.Event.id)))

    def counts(self, case_id: int) -> tuple[int, int]:
        """(warnings, closings) the case had: mail and timeline agreeing."""
        warnings = self.mails(case_id, "close_warning")
        closings = self.mails(case_id, "case_closed")
        assert warnings == len(self.events(case_id, "warning_sent"))
        assert closings == len([e for e in self.events(case_id, "closed")
                                if e.detail.get("reason") == "idle"])
        return warnings, closings


@pytest.fixture
def desk(runtime: Runtime, clock: FrozenClock) -> Desk:
    d = Desk(runtime, clock)
    d.add_store()
    return d
