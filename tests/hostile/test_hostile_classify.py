"""The classifier on mails built to be slow, and on replies that only
look automated."""

from __future__ import annotations

import time

import pytest
from hostile_mail import BUDGET_SECONDS, mail

from casemail.classify import classify
from casemail.mime.reader import read_mail

OWN = "reply.example.test"


def test_ten_thousand_parts_are_classified_in_time() -> None:
    """Every rule asked every part its type through the policy's header
    objects, a full parse each time: ten thousand parts took five
    seconds."""
    body = b"".join(b"--B\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % n
                    for n in range(10_000)) + b"--B--\r\n"
    read = read_mail(mail(body,
                          b"Content-Type: multipart/mixed; boundary=B\r\n"))
    started = time.perf_counter()
    verdict = classify(read, own_domain=OWN)
    assert time.perf_counter() - started < BUDGET_SECONDS
    assert verdict.kind == "human"


def test_a_deep_report_is_still_found_in_document_order() -> None:
    """Walking the parts by type keeps the report's parts in order."""
    raw = (b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
           b"To: bounces@reply.example.test\r\n"
           b"Subject: Undelivered Mail Returned to Sender\r\n"
           b"Content-Type: multipart/mixed; boundary=O\r\n\r\n"
           b"--O\r\nContent-Type: multipart/report; "
           b"report-type=delivery-status; boundary=R\r\n\r\n"
           b"--R\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
           b"--R\r\nContent-Type: message/delivery-status\r\n\r\n"
           b"Reporting-MTA: dns; mx.example.net\r\n\r\n"
           b"Final-Recipient: rfc822; jane@customer.example\r\n"
           b"Action: failed\r\nStatus: 5.1.1\r\n"
           b"--R--\r\n--O--\r\n")
    verdict = classify(read_mail(raw), own_domain=OWN)
    assert verdict.kind == "bounce"
    assert verdict.bounce is not None
    assert verdict.bounce.recipient == "jane@customer.example"
    assert verdict.bounce.status == "5.1.1"


def _customer(subject: bytes, body: bytes = b"My key is missing.\r\n"
              ) -> bytes:
    return mail(body).replace(b"Subject: My licence key",
                              b"Subject: " + subject)


@pytest.mark.parametrize("subject", [
    b"Re: Automatic reply: Your case 4471",
    b"RE: Out of Office: Your case 4471",
    b"AW: Abwesenheitsnotiz: Ihr Fall",
    b"Fwd: Automatic reply: Your case 4471",
    b"Re: =?utf-8?q?R=C3=A9ponse_automatique?=: votre demande",
])
def test_a_person_answering_an_auto_reply_stays_human(subject: bytes) -> None:
    """The subject rule allowed reply prefixes before the phrase, so a
    customer's answer to an auto-reply was dropped as automated."""
    verdict = classify(read_mail(_customer(subject)), own_domain=OWN)
    assert verdict.kind == "human", verdict.rules


@pytest.mark.parametrize("subject", [
    b"Out of office hours, my download failed",
    b"Absence of my licence key",
    b"Delivery Status Notification: where is my key?",
    b"Undeliverable download link",
])
def test_subjects_people_write_stay_human(subject: bytes) -> None:
    verdict = classify(read_mail(_customer(subject)), own_domain=OWN)
    assert verdict.kind == "human", verdict.rules


def test_a_customer_forwarding_a_bounce_stays_human() -> None:
    body = (b"I got this when I wrote to you:\r\n\r\n"
            b"---------- Forwarded message ---------\r\n"
            b"From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\n"
            b"Subject: Delivery Status Notification (Failure)\r\n\r\n"
            b"Your message wasn't delivered to shop@example.org because "
            b"the address couldn't be found.\r\n")
    verdict = classify(read_mail(_customer(b"Fwd: Delivery Status "
                                           b"Notification (Failure)", body)),
                       envelope_from="jane@customer.example", own_domain=OWN)
    assert verdict.kind == "human", verdict.rules


def test_a_customer_at_a_daemon_like_domain_stays_human() -> None:
    raw = mail(b"My key is missing.\r\n").replace(
        b"jane@customer.example", b"jane@mailer-daemon.example")
    verdict = classify(read_mail(raw), own_domain=OWN)
    assert verdict.kind == "human", verdict.rules
