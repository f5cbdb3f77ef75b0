"""read_mail on our own fixtures: headers, body choice, new text, ids."""

from __future__ import annotations

import datetime as dt

import pytest
from mailmaker import FIXTURES
from mailmaker import read_fixture as read

from casemail.mime.reader import read_mail


def test_gmail_reply_keeps_only_the_new_words():
    mail = read("gmail_reply.eml")
    assert mail.new_text == "The key still says “invalid” when I paste it."
    assert mail.removed_text.startswith("On Mon, Mar 3, 2025 at 6:01 PM")
    assert "ABCD-EFGH" in mail.removed_text
    assert mail.html.startswith('<div dir="ltr">')
    assert mail.defects == []


def test_headers_are_decoded_for_a_person():
    mail = read("outlook_german.eml")
    assert mail.subject == "AW: Download funktioniert nicht für Bestellung 77"
    assert str(mail.sender) == "Jürgen Müller <j.mueller@example.net>"
    assert mail.date == dt.datetime(2025, 3, 5, 14, 3, tzinfo=dt.UTC)
    assert mail.message_id == "<AM0PR-outlook-1@example.net>"


def test_threading_ids_come_in_order_with_brackets():
    mail = read("gmail_reply.eml")
    assert mail.in_reply_to == ["<case-1042-note-1@casemail.example.test>"]
    assert mail.references == ["<case-1042-open@casemail.example.test>",
                               "<case-1042-note-1@casemail.example.test>"]


def test_outlook_german_header_block_is_removed():
    mail = read("outlook_german.eml")
    assert mail.new_text.endswith("Grüße\nJürgen")
    assert mail.removed_text.splitlines()[1].startswith("Von: Pixel Forge")


def test_missing_message_id_is_derived_stably_from_the_content():
    raw = (FIXTURES / "no_message_id.eml").read_bytes()
    first, second = read_mail(raw), read_mail(raw)
    assert first.message_id == second.message_id
    assert first.message_id.endswith("@derived.casemail>")
    assert len(first.message_id) == len("<@derived.casemail>") + 32
    assert read_mail(raw + b"x").message_id != first.message_id
    assert "no Message-ID" in first.defects


def test_a_derived_message_id_leaves_out_what_servers_on_the_way_add():
    raw = (FIXTURES / "no_message_id.eml").read_bytes()
    first = read_mail(raw).message_id
    hops = (b"Received: from mx2.example (mx2.example [192.0.2.7])\r\n"
            b"\tby mx.example; Mon, 02 Mar 2026 10:05:00 +0000\r\n"
            b"Return-Path: <ana@customer.example>\r\n"
            b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=example; s=k; b=xyz\r\n"
            b"X-Spam-Status: No, score=-0.1\r\n")
    assert read_mail(hops + raw).message_id == first
    # Only on top: the same field inside the mail's own header counts.
    head, _, body = raw.partition(b"\r\n\r\n")
    inside = head + b"\r\nX-Spam-Status: Yes\r\n\r\n" + body
    assert read_mail(inside).message_id != first


def test_phone_signature_is_removed():
    mail = read("no_message_id.eml")
    assert mail.new_text == "Can I get a refund?"
    assert mail.removed_text == "Sent from my iPhone"


def test_the_raw_bytes_are_kept_exactly():
    raw = (FIXTURES / "gmail_reply.eml").read_bytes()
    assert read_mail(raw).raw is raw


def test_the_classifier_gets_default_policy_header_objects():
    mail = read("outlook_german.eml")
    assert mail.message["From"].addresses[0].username == "j.mueller"
    assert mail.header("Subject").startswith("AW: Download")
    assert mail.header("X-Not-There") == ""


NOTHING_NEW = {
    "quoted history": ("On Mon, 3 Mar 2025, Northwind <s@nw.example> "
                       "wrote:\r\n> Your key is ABCD-EFGH.\r\n"),
    "bare quote": "> Your key is ABCD-EFGH.\r\n",
    "signature": "-- \r\nLena Fischer\r\nFischer Design\r\n",
    "phone line": "\r\nSent from my iPhone\r\n",
    "signature above history": (
        "\r\n-- \r\nLena\r\n\r\nOn Mon, 3 Mar 2025, Northwind "
        "<s@nw.example> wrote:\r\n> Your key is ABCD-EFGH.\r\n"),
}


@pytest.mark.parametrize("body", NOTHING_NEW.values(), ids=NOTHING_NEW)
def test_a_reply_of_only_history_or_signature_has_no_new_text(body):
    """Nothing the author wrote this time: the new text is empty and the
    whole body is in the removed text, none of it lost."""
    mail = read_mail(("From: lena@example.net\r\nSubject: Re: Key\r\n"
                      "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                      + body).encode())
    assert mail.new_text == ""
    assert mail.removed_text == body.replace("\r\n", "\n").strip()


def test_a_forward_without_a_note_keeps_what_it_forwards():
    """A receipt forwarded as it is: the forwarded words are the message."""
    mail = read_mail(b"From: lena@example.net\r\nSubject: Fwd: Order\r\n\r\n"
                     b"---------- Forwarded message ---------\r\n"
                     b"From: Shop <shop@example.org>\r\nSubject: Order 77\r\n"
                     b"\r\nYour order 77 is paid.\r\n")
    assert mail.new_text == "Your order 77 is paid."
