"""The case service on a real database: every change, its timeline entry
and the mail it queues, in one transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from casemail.addresses import Party
from casemail.cases.content import Content
from casemail.cases.states import State
from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.errors import CaseError, InvalidTransition
from casemail.runtime import Runtime

CUSTOMER = "ana.lima@customer.example"
MERCHANT = "owner@lumen-fonts.example"


def add_store(rt: Runtime, *, auto_reply: str = "") -> None:
    now = rt.clock.now()
    with transaction(rt.sessions) as s:
        store = m.Store(slug="lumen", name="Lumen Fonts",
                        sender_address="support@lumen-fonts.example",
                        auto_reply_enabled=bool(auto_reply),
                        auto_reply_text=auto_reply, created_at=now)
        store.members.append(m.TeamMember(address=MERCHANT, name="Owner"))
        s.add(store)


def open_case(rt: Runtime) -> int:
    with transaction(rt.sessions) as s:
        case = rt.service.open_case(
            s, store_slug="lumen", order_ref="ORD-1001",
            customer_address=CUSTOMER, customer_name="Ana Lima",
            subject="Licence key never arrived",
            content=Content.typed("Where is my key?", source="api"))
        return case.id


def outbox(rt: Runtime, case_id: int) -> list[tuple[str, str, str]]:
    with rt.sessions() as s:
        rows = s.scalars(select(m.Outbox).where(m.Outbox.case_id == case_id)
                         .order_by(m.Outbox.id))
        return [(r.template, r.recipient, r.status) for r in rows]


def timeline(rt: Runtime, case_id: int) -> list[str]:
    with rt.sessions() as s:
        return [e.kind for e in s.scalars(
            select(m.Event).where(m.Event.case_id == case_id)
            .order_by(m.Event.id))]


def state(rt: Runtime, case_id: int) -> tuple[str, bool]:
    with rt.sessions() as s:
        case = s.get(m.Case, case_id)
        assert case is not None
        return case.state, case.unread


def write(rt: Runtime, case_id: int, party: Party, address: str,
          text: str = "Thanks") -> None:
    with transaction(rt.sessions) as s:
        case = rt.service.lock_case(s, case_id)
        rt.service.add_message(s, case, party=party, author_address=address,
                               content=Content.typed(text, source="cli"))


def set_status(rt: Runtime, case_id: int, party: Party, target: str) -> None:
    with transaction(rt.sessions) as s:
        case = rt.service.lock_case(s, case_id)
        rt.service.set_status(s, case, party=party, state=target)


def test_opening_notifies_the_merchant_and_marks_unread(runtime: Runtime) -> None:
    add_store(runtime)
    case_id = open_case(runtime)
    assert state(runtime, case_id) == (State.AWAITING_MERCHANT, True)
    assert outbox(runtime, case_id) == [("new_case", MERCHANT, "queued")]
    assert timeline(runtime, case_id) == ["opened", "message"]


def test_store_auto_reply_goes_to_the_customer_once(runtime: Runtime) -> None:
    add_store(runtime, auto_reply="We answer within one working day.")
    case_id = open_case(runtime)
    sent = outbox(runtime, case_id)
    assert ("auto_reply", CUSTOMER, "queued") in sent
    assert timeline(runtime, case_id).count("auto_reply_sent") == 1
    with transaction(runtime.sessions) as s:  # asking again sends nothing
        runtime.service.mail.auto_reply(s, runtime.service.lock_case(s, case_id))
    assert [t for t, *_ in outbox(runtime, case_id)].count("auto_reply") == 1


def test_merchant_reply_waits_for_customer_and_mails_them(
        runtime: Runtime) -> None:
    add_store(runtime)
    case_id = open_case(runtime)
    write(runtime, case_id, Party.MERCHANT, MERCHANT, "Here is your key.")
    assert state(runtime, case_id)[0] == State.AWAITING_CUSTOMER
    assert outbox(runtime, case_id)[-1] == ("merchant_reply", CUSTOMER, "queued")


def test_customer_reply_reopens_a_closed_case(runtime: Runtime) -> None:
    add_store(runtime)
    case_id = open_case(runtime)
    set_status(runtime, case_id, Party.MERCHANT, "closed")
    with transaction(runtime.sessions) as s:
        runtime.service.mark_read(s, runtime.service.lock_case(s, case_id))
    assert state(runtime, case_id) == (State.CLOSED, False)
    write(runtime, case_id, Party.CUSTOMER, CUSTOMER, "Still broken.")
    assert state(runtime, case_id) == (State.AWAITING_MERCHANT, True)
    kinds = timeline(runtime, case_id)
    assert kinds[-3:] == ["message", "state_changed", "reopened"]
    assert outbox(runtime, case_id)[-1][:2] == ("customer_reply", MERCHANT)


def test_staff_message_goes_to_both_parties_and_opens(runtime: Runtime) -> None:
    add_store(runtime)
    case_id = open_case(runtime)
    write(runtime, case_id, Party.STAFF, "agent@platform.example")
    assert state(runtime, case_id)[0] == State.OPEN
    staff = [r for t, r, _ in outbox(runtime, case_id) if t == "staff_message"]
    assert sorted(staff) == sorted([CUSTOMER, MERCHANT])
    assert "staff_joined" in timeline(runtime, case_id)


def test_customer_closes_and_reopens_through_the_portal(
        runtime: Runtime) -> None:
    add_store(runtime)
    case_id = open_case(runtime)
    set_status(runtime, case_id, Party.CUSTOMER, "closed")
    assert state(runtime, case_id)[0] == State.CLOSED
    set_status(runtime, case_id, Party.CUSTOMER, "awaiting_merchant")
    assert state(runtime, case_id)[0] == State.AWAITING_MERCHANT
    with pytest.raises(InvalidTransition):
        set_status(runtime, case_id, Party.CUSTOMER, "awaiting_customer")


def test_priority_and_read_are_on_the_timeline(runtime: Runtime) -> None:
    add_store(runtime)
    case_id = open_case(runtime)
    with transaction(runtime.sessions) as s:
        case = runtime.service.lock_case(s, case_id)
        runtime.service.set_priority(s, case, "urgent", party=Party.MERCHANT)
        runtime.service.mark_read(s, case)
    assert timeline(runtime, case_id)[-2:] == ["priority_changed", "marked_read"]
    assert state(runtime, case_id)[1] is False


def test_a_failed_change_leaves_no_mail_and_no_event(runtime: Runtime) -> None:
    add_store(runtime)
    case_id = open_case(runtime)
    before_mail, before_events = outbox(runtime, case_id), timeline(runtime,
                                                                    case_id)
    with pytest.raises(RuntimeError), transaction(runtime.sessions) as s:
        case = runtime.service.lock_case(s, case_id)
        runtime.service.add_message(
            s, case, party=Party.MERCHANT, author_address=MERCHANT,
            content=Content.typed("half done", source="cli"))
        raise RuntimeError("crash after the change, before the commit")
    assert outbox(runtime, case_id) == before_mail
    assert timeline(runtime, case_id) == before_events
    assert state(runtime, case_id)[0] == State.AWAITING_MERCHANT


def test_automated_mail_moves_nothing(runtime: Runtime) -> None:
    add_store(runtime)
    case_id = open_case(runtime)
    set_status(runtime, case_id, Party.MERCHANT, "closed")
    sent_before = len(outbox(runtime, case_id))
    with transaction(runtime.sessions) as s:
        case = runtime.service.lock_case(s, case_id)
        content = Content(new_text="I am away", kind="auto-reply",
                          rules=["auto-submitted"])
        with pytest.raises(CaseError):
            runtime.service.add_message(s, case, party=Party.CUSTOMER,
                                        author_address=CUSTOMER,
                                        content=content)
        runtime.service.record_automated(s, case, party=Party.CUSTOMER,
                                         author_address=CUSTOMER,
                                         content=content)
    assert state(runtime, case_id)[0] == State.CLOSED
    assert len(outbox(runtime, case_id)) == sent_before
    assert timeline(runtime, case_id)[-1] == "automated"
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(m.Message)) == 2


@pytest.mark.parametrize("text", ["", " \n\t", "\u200b\n"])
def test_nothing_to_read_is_refused_by_every_caller(
        runtime: Runtime, text: str) -> None:
    """A reply or an opening with no text and no file kept, through the
    service (the command line and the API): refused, nothing changed."""
    add_store(runtime)
    case_id = open_case(runtime)
    before = outbox(runtime, case_id), timeline(runtime, case_id)
    with pytest.raises(CaseError, match="empty"), \
            transaction(runtime.sessions) as s:
        case = runtime.service.lock_case(s, case_id)
        runtime.service.add_message(s, case, party=Party.MERCHANT,
                                    author_address=MERCHANT,
                                    content=Content.typed(text, source="api"))
    assert (outbox(runtime, case_id), timeline(runtime, case_id)) == before
    with pytest.raises(CaseError, match="empty"), \
            transaction(runtime.sessions) as s:
        runtime.service.open_case(
            s, store_slug="lumen", order_ref="ORD-1002",
            customer_address=CUSTOMER, customer_name="Ana Lima",
            subject="Key", content=Content.typed(text, source="api"))
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(m.Case)) == 1


@pytest.mark.parametrize(("field", "value", "said"), [
    ("order_ref", " ", "the order reference is empty"),
    ("subject", "", "the subject is empty"),
    ("customer_address", "Ana Lima <ana.lima@customer.example>",
     "is not a mail address"),
    ("customer_address", "", "is not a mail address"),
    ("customer_name", "A" * 201, "the customer name is 201 characters"),
])
def test_a_case_is_not_opened_with_a_field_it_cannot_work_with(
        runtime: Runtime, field: str, value: str, said: str) -> None:
    """The check is the service's, so the API and the command line get
    the same refusal, naming the field."""
    add_store(runtime)
    fields = {"order_ref": "ORD-1001", "subject": "Key",
              "customer_address": CUSTOMER, "customer_name": "Ana Lima",
              field: value}
    with pytest.raises(CaseError, match=said), \
            transaction(runtime.sessions) as s:
        runtime.service.open_case(
            s, store_slug="lumen", **fields,
            content=Content.typed("Where is my key?", source="api"))
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(m.Case)) == 0


def test_a_customer_who_bounced_is_reached_again_once_they_write_by_mail(
        runtime: Runtime) -> None:
    add_store(runtime)
    case_id = open_case(runtime)
    write(runtime, case_id, Party.MERCHANT, MERCHANT, "Your key: ABC-1.")
    with transaction(runtime.sessions) as s:
        sent = s.scalars(select(m.Outbox).where(
            m.Outbox.case_id == case_id,
            m.Outbox.template == "merchant_reply")).one()
        runtime.service.record_bounce(
            s, sent, status="5.2.2", diagnostic="mailbox full",
            permanent=True, content=Content.typed("Mailbox full.",
                                                  source="email"))

    def merchant_answer_goes_out(text: str) -> bool:
        write(runtime, case_id, Party.MERCHANT, MERCHANT, text)
        return outbox(runtime, case_id)[-1][2] == "queued"

    # Typed on the portal: it proves nothing about the mailbox.
    write(runtime, case_id, Party.CUSTOMER, CUSTOMER, "Still nothing.")
    assert not merchant_answer_goes_out("Sent again.")
    # From another mailbox: nor does that.
    with transaction(runtime.sessions) as s:
        case = runtime.service.lock_case(s, case_id)
        runtime.service.add_message(
            s, case, party=Party.CUSTOMER,
            author_address="ana@other-mail.example",
            content=Content.typed("From my other address.", source="email"))
    assert not merchant_answer_goes_out("And again.")
    # By mail from the address that bounced: it works again.
    with transaction(runtime.sessions) as s:
        case = runtime.service.lock_case(s, case_id)
        runtime.service.add_message(
            s, case, party=Party.CUSTOMER, author_address=CUSTOMER.upper(),
            content=Content.typed("Cleared my mailbox.", source="email"))
    assert merchant_answer_goes_out("Here it is once more.")
    assert timeline(runtime, case_id).count("customer_reachable") == 1
