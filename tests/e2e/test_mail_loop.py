"""Two auto-responders facing each other: ours and a customer's.

The store answers every new case with its auto-reply; the customer's
mailbox answers every mail it gets with an out-of-office, sent back to the
``Reply-To`` over real SMTP. The exchange must die out after a few mails,
whatever manners the customer's responder has — never ping-pong on.
"""

from __future__ import annotations

import smtplib
from email import message_from_bytes
from email.utils import make_msgid

import pytest
from e2e_gateway import CUSTOMER, GatewayThread, deliver_all
from sqlalchemy import func, select

from casemail.cases.content import Content
from casemail.cli.stores import add_store
from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.outbound.sink import MaildirSink
from casemail.runtime import Runtime

MERCHANT = "ana.kovac@northwind-keys.example"

# What customers' vacation programs really send, from polite to careless.
RESPONDERS = {
    "rfc3834": ("Auto-Submitted: auto-replied\r\n", "Auto: {subject}"),
    "exchange": ("X-Auto-Response-Suppress: All\r\n"
                 "X-MS-Exchange-Inbox-Rules-Loop: lena\r\n",
                 "Automatic reply: {subject}"),
    "bare-subject-only": ("", "Out of Office: {subject}"),
}


def out_of_office(headers: str, subject: str, reply_to: str,
                  in_reply_to: str) -> bytes:
    return (f"From: Lena Fischer <{CUSTOMER}>\r\nTo: <{reply_to}>\r\n"
            f"Subject: {subject}\r\nMessage-ID: {make_msgid('ooo')}\r\n"
            f"In-Reply-To: {in_reply_to}\r\n{headers}\r\n"
            "I am on holiday until Monday and will read your mail then.\r\n"
            ).encode()


def open_case_with_auto_reply(rt: Runtime) -> int:
    with transaction(rt.sessions) as s:
        add_store(s, rt.clock, slug="northwind", name="Northwind Keys",
                  sender="support@northwind-keys.example", members=[MERCHANT])
        store = s.scalars(select(m.Store)).one()
        store.auto_reply_enabled = True
        store.auto_reply_text = "We answer within one working day."
        case = rt.service.open_case(
            s, store_slug="northwind", order_ref="NW-1", customer_address=CUSTOMER,
            customer_name="Lena Fischer", subject="Key missing",
            content=Content.typed("No key yet.", source="api"))
        return int(case.id)


@pytest.mark.parametrize("manners", sorted(RESPONDERS))
def test_our_auto_reply_and_an_out_of_office_do_not_loop(
        manners: str, e2e_runtime: Runtime, gateway: GatewayThread,
        sink: MaildirSink) -> None:
    case_id = open_case_with_auto_reply(e2e_runtime)
    headers, subject_form = RESPONDERS[manners]
    answered: set[str] = set()

    for _round in range(10):
        deliver_all(e2e_runtime)
        fresh = [msg for msg in sink.messages()
                 if CUSTOMER in str(msg["To"]) and
                 msg["Message-ID"] not in answered]
        if not fresh:
            break
        for msg in fresh:  # the customer's mailbox answers each one
            answered.add(msg["Message-ID"])
            ooo = out_of_office(headers, subject_form.format(
                subject=msg["Subject"]), msg["Reply-To"], msg["Message-ID"])
            with smtplib.SMTP("127.0.0.1", gateway.port, timeout=30) as c:
                c.sendmail(CUSTOMER, [msg["Reply-To"]], ooo)
    else:
        pytest.fail("the responders were still exchanging after 10 rounds")

    # Our auto-reply went out once; the out-of-office was recorded and
    # caused nothing: no mail to anyone, no change of state or unread.
    to_customer = [msg for msg in sink.messages() if CUSTOMER in str(msg["To"])]
    assert len(to_customer) == 1
    assert message_from_bytes(to_customer[0].as_bytes())[
        "Auto-Submitted"] == "auto-replied"
    with e2e_runtime.sessions() as s:
        case = s.get(m.Case, case_id)
        assert case is not None and case.state == "awaiting_merchant"
        automated = s.scalar(select(func.count()).select_from(m.Event).where(
            m.Event.case_id == case_id, m.Event.kind == "automated"))
        assert automated == 1
        sent = s.scalar(select(func.count()).select_from(m.Outbox).where(
            m.Outbox.case_id == case_id))
    assert sent == 2  # the merchant's new-case notice and the auto-reply
