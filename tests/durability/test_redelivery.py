"""The same mail delivered again is answered 250 and filed once; the key
is the received bytes plus the envelope recipient, never the Message-ID."""

from __future__ import annotations

import smtplib

from durability_kit import (
    Letter,
    count_by,
    customer,
    make_mail,
    message_counts,
    open_cases,
    reply_address,
    send_once,
)
from sqlalchemy import select

from casemail.addresses import Party
from casemail.db import models as m
from casemail.runtime import Runtime


def test_a_redelivered_mail_is_answered_250_and_filed_once(
        runtime: Runtime, smtp_port: int) -> None:
    """Twice the same bytes to the same reply address: one raw mail, one
    message, and the second answer says it was filed already."""
    [case] = open_cases(runtime, 1)
    to = reply_address(runtime, case, Party.CUSTOMER)
    data = make_mail(sender=customer(0), to=to, subject="Re: licence",
                     text="The key still fails.",
                     message_id="<again-1@customer.example>")
    letter = Letter("<again-1@customer.example>", customer(0), to, data)

    first = send_once(smtp_port, letter)
    second = send_once(smtp_port, letter)

    assert first[0] == second[0] == 250
    assert "already filed" in second[1] and "already" not in first[1]
    assert list(count_by(runtime, m.RawMail.idem_key).values()) == [1]
    assert message_counts(runtime)["<again-1@customer.example>"] == 1


def test_one_mail_to_two_cases_is_filed_in_each_once(
        runtime: Runtime, smtp_port: int) -> None:
    """One Message-ID, two recipients: two deliveries, each kept once even
    when the whole transaction is sent again."""
    cases = open_cases(runtime, 2)
    to = [reply_address(runtime, c, Party.CUSTOMER) for c in cases]
    data = make_mail(sender=customer(0), to=", ".join(to),
                     subject="Both orders", text="Same trouble on both.",
                     message_id="<both@customer.example>")
    for _ in range(2):
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
            refused = smtp.sendmail(customer(0), to, data)
            assert refused == {}

    assert len(count_by(runtime, m.RawMail.idem_key)) == 2
    with runtime.sessions() as s:
        filed = sorted(s.scalars(select(m.Message.case_id).where(
            m.Message.message_id == "<both@customer.example>")))
    assert filed == sorted(cases)


def test_a_mail_without_message_id_is_filed_once_under_a_derived_id(
        runtime: Runtime, smtp_port: int) -> None:
    """No Message-ID: the content gives one, and a redelivery is still
    found by its bytes."""
    [case] = open_cases(runtime, 1)
    to = reply_address(runtime, case, Party.CUSTOMER)
    data = make_mail(sender=customer(0), to=to, subject="Re: licence",
                     text="Sent from a client that sets no id.")
    assert b"message-id" not in data.lower()
    letter = Letter("", customer(0), to, data)

    assert send_once(smtp_port, letter)[0] == 250
    assert send_once(smtp_port, letter)[0] == 250

    derived = [k for k in message_counts(runtime) if "derived" in k]
    assert len(derived) == 1
    assert message_counts(runtime)[derived[0]] == 1
    assert len(count_by(runtime, m.RawMail.idem_key)) == 1
