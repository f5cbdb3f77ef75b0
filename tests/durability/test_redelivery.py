"""The same mail delivered again is answered 250 and filed once. The key
is the received bytes plus the envelope recipient, not the Message-ID;
a copy in other bytes (a reply to all, a relay's second copy) is known
in its case by its Message-ID and new text."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from durability_kit import (
    MERCHANT,
    Letter,
    count_by,
    customer,
    make_mail,
    message_counts,
    open_cases,
    reply_address,
    send_once,
    tiny_png,
)
from sqlalchemy import select

from casemail.addresses import Party
from casemail.cases.content import Content
from casemail.db import models as m
from casemail.db.engine import transaction
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


def _merchant_answers(rt: Runtime, case_id: int) -> str:
    """The merchant writes; the Message-ID of the mail the customer gets."""
    with transaction(rt.sessions) as s:
        case = rt.service.lock_case(s, case_id)
        rt.service.add_message(
            s, case, party=Party.MERCHANT, author_address=MERCHANT,
            content=Content.typed("Your new key is ABC-1.", source="api"))
    with rt.sessions() as s:
        return s.scalars(select(m.Outbox.message_id).where(
            m.Outbox.case_id == case_id, m.Outbox.party == "customer")
            .order_by(m.Outbox.id.desc())).first() or ""


def _customer_notices(rt: Runtime, case_id: int) -> int:
    with rt.sessions() as s:
        return len(s.scalars(select(m.Outbox.id).where(
            m.Outbox.case_id == case_id,
            m.Outbox.template == "customer_reply")).all())


def test_a_reply_to_all_is_filed_once(runtime: Runtime,
                                      smtp_port: int) -> None:
    """Answering all of our notification reaches the case twice in one
    transaction: by the reply address (Reply-To) and by our sender
    address (From), which finds the case by In-Reply-To. One message,
    one notice to the merchant."""
    [case] = open_cases(runtime, 1)
    answered = _merchant_answers(runtime, case)
    to = [reply_address(runtime, case, Party.CUSTOMER),
          runtime.settings.from_address]
    data = make_mail(sender=customer(0), to=", ".join(to),
                     subject="Re: your key", text="That key works, thanks!",
                     message_id="<all@customer.example>")
    data = (f"In-Reply-To: {answered}\r\nReferences: {answered}\r\n"
            .encode() + data)
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
        assert smtp.sendmail(customer(0), to, data) == {}

    assert message_counts(runtime)["<all@customer.example>"] == 1
    assert _customer_notices(runtime, case) == 1
    with runtime.sessions() as s:
        kept = sorted(s.scalars(select(m.RawMail.status).where(
            m.RawMail.case_id == case)))
    assert kept == ["duplicate", "filed"]


def test_a_second_copy_with_a_trace_header_of_its_own_is_filed_once(
        runtime: Runtime, smtp_port: int) -> None:
    """A relay that lost our answer sends the mail again through another
    hop: other bytes (one more Received line), the same message."""
    [case] = open_cases(runtime, 1)
    to = reply_address(runtime, case, Party.CUSTOMER)
    data = make_mail(sender=customer(0), to=to, subject="Re: licence",
                     text="Still no key.", message_id="<hop@customer.example>")
    again = (b"Received: from mx2.customer.example by mx.example;"
             b" Mon, 02 Mar 2026 10:05:00 +0000\r\n" + data)

    first = send_once(smtp_port, Letter("<hop@customer.example>",
                                        customer(0), to, data))
    second = send_once(smtp_port, Letter("<hop@customer.example>",
                                         customer(0), to, again))

    assert first[0] == second[0] == 250
    assert "already filed" in second[1]
    assert message_counts(runtime)["<hop@customer.example>"] == 1
    assert _customer_notices(runtime, case) == 1


def test_one_message_id_on_other_words_is_filed_each_time(
        runtime: Runtime, smtp_port: int) -> None:
    """A client that gives every mail the same Message-ID loses nothing:
    a copy is the same id and the same new text."""
    [case] = open_cases(runtime, 1)
    to = reply_address(runtime, case, Party.CUSTOMER)
    for n, text in enumerate(["First question.", "Second question."]):
        data = make_mail(sender=customer(0), to=to, subject="Re: licence",
                         text=text, message_id="<same@broken.example>")
        answer = send_once(smtp_port, Letter(f"<same{n}>", customer(0), to,
                                             data))
        assert answer[0] == 250 and "already" not in answer[1]

    assert message_counts(runtime)["<same@broken.example>"] == 2
    assert _customer_notices(runtime, case) == 2


def _with_file(sender: str, to: str, mid: str, text: str,
               data: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, "Re: licence"
    msg["Message-ID"] = mid
    msg["Date"] = "Mon, 02 Mar 2026 10:00:00 +0000"
    msg.set_content(text)
    msg.add_attachment(data, maintype="image", subtype="png",
                       filename="screen.png")
    return msg.as_bytes().replace(b"\n", b"\r\n")


def test_one_message_id_and_text_with_other_files_is_filed_each_time(
        runtime: Runtime, smtp_port: int) -> None:
    """'See attached.' twice under one Message-ID, each with its own
    screenshot: two messages, both files in the case."""
    [case] = open_cases(runtime, 1)
    to = reply_address(runtime, case, Party.CUSTOMER)
    for n in range(2):
        data = _with_file(customer(0), to, "<att@broken.example>",
                          "See attached.", tiny_png() + bytes([n]) * 8)
        answer = send_once(smtp_port, Letter(f"<att{n}>", customer(0), to,
                                             data))
        assert answer[0] == 250 and "already" not in answer[1], answer

    assert message_counts(runtime)["<att@broken.example>"] == 2
    with runtime.sessions() as s:
        files = set(s.scalars(select(m.Attachment.sha256)))
    assert len(files) == 2


def test_the_copy_of_a_held_message_is_still_filed(
        runtime: Runtime, smtp_port: int) -> None:
    """The merchant's colleague, not yet on the team, wrote: held. The
    same words under the same Message-ID then come from the team's
    address (a forward, a resend): nothing was filed, so this is."""
    [case] = open_cases(runtime, 1)
    to = reply_address(runtime, case, Party.MERCHANT)
    for sender in ("colleague@nordlicht-audio.example", MERCHANT):
        data = make_mail(sender=sender, to=to, subject="Re: licence",
                         text="Your new key is ABC-9.",
                         message_id="<resend@merchant.example>")
        answer = send_once(smtp_port, Letter("<resend>", sender, to, data))
        assert answer[0] == 250 and "already" not in answer[1], answer

    with runtime.sessions() as s:
        held = list(s.scalars(select(m.Message.held).where(
            m.Message.message_id == "<resend@merchant.example>")
            .order_by(m.Message.id)))
    assert held == [True, False]


def test_a_second_copy_of_a_mail_without_message_id_is_filed_once(
        runtime: Runtime, smtp_port: int) -> None:
    """The id made up for a mail without one leaves out what servers on
    the way add on top, so a relay's second copy is known as the same."""
    [case] = open_cases(runtime, 1)
    to = reply_address(runtime, case, Party.CUSTOMER)
    data = make_mail(sender=customer(0), to=to, subject="Re: licence",
                     text="No id on this one.")
    again = (b"Received: from mx2.customer.example by mx.example;\r\n"
             b"  Mon, 02 Mar 2026 10:05:00 +0000\r\n"
             b"X-Spam-Status: No, score=-1.0\r\n" + data)

    first = send_once(smtp_port, Letter("", customer(0), to, data))
    second = send_once(smtp_port, Letter("", customer(0), to, again))

    assert first[0] == second[0] == 250
    assert "already filed" in second[1]
    assert _customer_notices(runtime, case) == 1
