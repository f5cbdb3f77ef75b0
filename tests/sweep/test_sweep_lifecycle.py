"""The clock moved through whole idle stretches, with replies at the
edges: one warning per stretch, one closing, and a reply always wins."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from casemail.addresses import Party
from casemail.cases.states import State
from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.errors import InvalidTransition
from casemail.sweep import SweepReport, _handle, find_planned, run_sweep

if TYPE_CHECKING:
    from conftest import Desk

DAY = dt.timedelta(days=1)
SECOND = dt.timedelta(seconds=1)


def test_warned_at_day_11_and_closed_at_day_14_exactly_once(
        desk: Desk) -> None:
    """Default store: warning 3 days before the 14-day idle end."""
    start = desk.clock.now()
    case_id = desk.open_waiting()

    assert desk.at(start + 11 * DAY - SECOND).sweep().warned == []
    report = desk.at(start + 11 * DAY).sweep()
    assert report.warned == [case_id]
    assert desk.sweep().warned == []  # same moment, second pass
    assert desk.at(start + 13 * DAY).sweep().warned == []

    [warning] = desk.events(case_id, "warning_sent")
    assert warning.detail["close_at"] == (start + 14 * DAY).isoformat()
    assert desk.at(start + 14 * DAY - SECOND).sweep().closed == []
    assert desk.at(start + 14 * DAY).sweep().closed == [case_id]
    assert desk.at(start + 30 * DAY).sweep().closed == []

    case = desk.case(case_id)
    assert case.state == State.CLOSED
    assert case.closed_at == start + 14 * DAY
    assert desk.counts(case_id) == (1, 1)
    [closed] = desk.events(case_id, "closed")
    assert closed.party == "system"


def test_reply_just_before_the_warning_starts_a_new_stretch(
        desk: Desk) -> None:
    start = desk.clock.now()
    case_id = desk.open_waiting()
    desk.at(start + 11 * DAY - SECOND).customer_reply(case_id)
    assert desk.at(start + 11 * DAY).sweep().warned == []

    # The merchant answers a day later: the stretch counts from there.
    answered = start + 12 * DAY
    desk.at(answered).merchant_reply(case_id)
    assert desk.at(answered + 11 * DAY - SECOND).sweep().warned == []
    assert desk.at(answered + 11 * DAY).sweep().warned == [case_id]
    assert desk.at(answered + 14 * DAY).sweep().closed == [case_id]
    assert desk.counts(case_id) == (1, 1)


def test_reply_between_warning_and_close_keeps_the_case_open(
        desk: Desk) -> None:
    start = desk.clock.now()
    case_id = desk.open_waiting()
    assert desk.at(start + 11 * DAY).sweep().warned == [case_id]
    desk.at(start + 12 * DAY).customer_reply(case_id)
    assert desk.case(case_id).warned_at is None

    assert desk.at(start + 14 * DAY).sweep().closed == []
    assert desk.at(start + 40 * DAY).sweep().closed == []
    assert desk.case(case_id).state == State.AWAITING_MERCHANT

    # A new stretch earns a new warning of its own, and one closing.
    desk.at(start + 41 * DAY).merchant_reply(case_id)
    assert desk.at(start + 52 * DAY).sweep().warned == [case_id]
    assert desk.at(start + 55 * DAY).sweep().closed == [case_id]
    assert desk.counts(case_id) == (2, 1)


def test_reply_exactly_at_the_deadline_wins_over_a_later_sweep(
        desk: Desk) -> None:
    start = desk.clock.now()
    case_id = desk.open_waiting()
    desk.at(start + 11 * DAY).sweep()
    desk.at(start + 14 * DAY).customer_reply(case_id)
    assert desk.sweep().closed == []
    assert desk.case(case_id).state == State.AWAITING_MERCHANT
    assert desk.counts(case_id) == (1, 0)


def test_reply_after_a_sweep_at_the_deadline_reopens_the_case(
        desk: Desk) -> None:
    start = desk.clock.now()
    case_id = desk.open_waiting()
    desk.at(start + 11 * DAY).sweep()
    assert desk.at(start + 14 * DAY).sweep().closed == [case_id]
    desk.customer_reply(case_id)
    assert desk.case(case_id).state == State.AWAITING_MERCHANT
    assert [e.kind for e in desk.events(case_id, "reopened")] == ["reopened"]


def test_reply_committed_after_listing_wins_the_recheck(desk: Desk) -> None:
    """The pass listed the case as due; the reply came before the lock."""
    start = desk.clock.now()
    case_id = desk.open_waiting()
    desk.at(start + 11 * DAY).sweep()
    now = desk.at(start + 14 * DAY).clock.now()
    [planned] = find_planned(desk.rt, now, now, None)
    assert (planned.case_id, planned.action) == (case_id, "close")

    desk.customer_reply(case_id)
    report = run_sweep(desk.rt)
    assert report.closed == [] and report.planned == []
    # And a step listed before the reply is skipped under the lock.
    late = SweepReport(as_of=now)
    _handle(desk.rt, case_id, late)
    assert late.skipped == [case_id] and late.closed == []
    assert desk.counts(case_id) == (1, 0)


def test_status_change_is_activity_too(desk: Desk) -> None:
    start = desk.clock.now()
    case_id = desk.open_waiting()
    desk.at(start + 11 * DAY).sweep()
    with transaction(desk.rt.sessions) as s:
        case = desk.rt.service.lock_case(s, case_id)
        desk.rt.service.set_status(s, case, party=Party.MERCHANT,
                                   state=State.OPEN)
        desk.rt.service.set_status(s, case, party=Party.MERCHANT,
                                   state=State.AWAITING_CUSTOMER)
    assert desk.at(start + 14 * DAY).sweep().closed == []
    assert desk.at(start + 22 * DAY).sweep().warned == [case_id]


def test_late_warning_still_gives_the_whole_lead_time(desk: Desk) -> None:
    """The sweep was stopped for weeks: warn now, close three days on."""
    start = desk.clock.now()
    case_id = desk.open_waiting()
    report = desk.at(start + 20 * DAY).sweep()
    assert report.warned == [case_id] and report.closed == []
    [warning] = desk.events(case_id, "warning_sent")
    assert warning.detail["close_at"] == (start + 23 * DAY).isoformat()
    assert desk.at(start + 23 * DAY - SECOND).sweep().closed == []
    assert desk.at(start + 23 * DAY).sweep().closed == [case_id]


def test_close_never_comes_before_the_date_the_warning_named(
        desk: Desk) -> None:
    """Shortening the idle period after a warning does not break it."""
    start = desk.clock.now()
    case_id = desk.open_waiting()
    desk.at(start + 11 * DAY).sweep()
    with transaction(desk.rt.sessions) as s:
        store = desk.rt.service.store(s, "lumen")
        store.idle_seconds = 5 * 86400
        store.warning_lead_seconds = 86400
    assert desk.at(start + 13 * DAY).sweep().closed == []
    assert desk.at(start + 14 * DAY).sweep().closed == [case_id]


def test_store_settings_apply_per_store(desk: Desk) -> None:
    start = desk.clock.now()
    desk.add_store("quick", idle_seconds=2 * 86400,
                   warning_lead_seconds=86400)
    desk.add_store("never", auto_close_enabled=False)
    desk.add_store("silent", idle_seconds=5 * 86400, warning_lead_seconds=0)
    lumen = desk.open_waiting("lumen", 1)
    quick = desk.open_waiting("quick", 2)
    never = desk.open_waiting("never", 3)
    silent = desk.open_waiting("silent", 4)

    assert desk.at(start + DAY).sweep().warned == [quick]
    assert desk.at(start + 2 * DAY).sweep().closed == [quick]
    assert desk.at(start + 5 * DAY).sweep().closed == [silent]
    report = desk.at(start + 100 * DAY).sweep()
    assert report.warned == [lumen] and report.closed == []
    assert desk.case(never).state == State.AWAITING_CUSTOMER
    assert desk.counts(silent) == (0, 1)  # no lead time: no warning


def test_dry_run_changes_nothing_and_names_the_dates(desk: Desk) -> None:
    start = desk.clock.now()
    first = desk.open_waiting(n=1)
    desk.at(start + 5 * DAY)
    second = desk.open_waiting(n=2)
    desk.at(start + 13 * DAY)
    report = desk.sweep(dry_run=True)
    assert report.warned == [] and report.closed == []
    # Two days late: the warning still gives three days.
    assert [(p.case_id, p.action, p.close_at) for p in report.planned] == [
        (first, "warn", start + 16 * DAY)]
    assert desk.counts(first) == (0, 0)
    assert desk.case(first).warned_at is None

    # Looking ahead: the passes until then warn on time, and close.
    ahead = desk.sweep(dry_run=True, as_of=start + 17 * DAY)
    assert [(p.case_id, p.action, p.at, p.close_at)
            for p in ahead.planned] == [
        (first, "close", start + 16 * DAY, start + 16 * DAY),
        (second, "warn", start + 16 * DAY, start + 19 * DAY)]
    further = desk.sweep(dry_run=True, as_of=start + 19 * DAY)
    assert [p.action for p in further.planned] == ["close", "close"]
    assert desk.counts(first) == (0, 0)


def test_real_pass_at_another_moment_is_refused(desk: Desk) -> None:
    with pytest.raises(ValueError):
        desk.sweep(as_of=desk.clock.now() + DAY)


def test_service_refuses_a_second_warning_in_one_stretch(desk: Desk) -> None:
    case_id = desk.open_waiting()
    close_at = desk.clock.now() + 14 * DAY
    with transaction(desk.rt.sessions) as s:
        desk.rt.service.warn(s, desk.rt.service.lock_case(s, case_id),
                             close_at)
    with pytest.raises(InvalidTransition), \
            transaction(desk.rt.sessions) as s:
        desk.rt.service.warn(s, desk.rt.service.lock_case(s, case_id),
                             close_at)
    assert desk.counts(case_id) == (1, 0)


def test_limit_takes_the_oldest_first(desk: Desk) -> None:
    start = desk.clock.now()
    ids = []
    for n in range(4):
        desk.at(start + n * dt.timedelta(hours=1))
        ids.append(desk.open_waiting(n=n))
    report = desk.at(start + 12 * DAY).sweep(limit=3)
    assert report.warned == ids[:3]
    assert desk.sweep().warned == ids[3:]


def _mail_text(desk: Desk, case_id: int, template: str) -> tuple[str, str]:
    """The queued mail's Auto-Submitted header and plain text, unfolded."""
    customer = desk.case(case_id).customer_address
    with desk.rt.sessions() as s:
        row = s.scalars(select(m.Outbox).where(
            m.Outbox.case_id == case_id, m.Outbox.template == template)).one()
    assert row.automated and row.status == "queued"
    assert row.recipient == customer
    mail = email.message_from_bytes(row.data, policy=email.policy.default)
    body = mail.get_body(("plain",))
    assert body is not None
    return mail["Auto-Submitted"], " ".join(body.get_content().split())


def test_the_mails_name_the_date_and_how_to_keep_or_reopen(
        desk: Desk) -> None:
    start = desk.clock.now()
    case_id = desk.open_waiting()
    desk.at(start + 11 * DAY).sweep()
    auto, text = _mail_text(desk, case_id, "close_warning")
    assert auto == "auto-generated"
    assert "Monday 19 January 2026, 09:00 UTC" in text
    assert "Reply to this email before then and the case stays open" in text

    desk.at(start + 14 * DAY).sweep()
    auto, text = _mail_text(desk, case_id, "case_closed")
    assert auto == "auto-generated"
    assert "reply to this email and the case reopens" in text
