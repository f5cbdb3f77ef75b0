"""A reply with nothing in it, over real SMTP, on SQLite and PostgreSQL.

No text at all, only blanks, only the quoted history or only a
signature, and no file kept: the mail is answered 250, kept and shown on
the timeline as empty, and changes nothing — the case stays where it
was and stays read, and nobody is sent a notification about nothing. A
file alone is a message, and is filed as ever.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.policy import SMTP

from e2e_gateway import CUSTOMER, open_case
from sqlalchemy import select

from casemail.addresses import Party
from casemail.cases.content import Content
from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.intake import replies
from casemail.runtime import Runtime

MERCHANT = "ana.kovac@northwind-keys.example"

QUOTED = ("On Mon, 3 Mar 2025 at 10:02, Northwind Keys "
          "<support@northwind-keys.example> wrote:\n"
          "> We sent your key again this morning.\n")

# What people's mail clients send when they hit "send" on nothing.
NOTHING = {
    "no body": ("plain", ""),
    "blank lines": ("plain", " \n\t\n\u00a0\n"),
    "quoted history": ("plain", "\n" + QUOTED),
    "signature": ("plain", "\n-- \nLena Fischer\nFischer Design\n"),
    "phone signature and history": (
        "plain", "\nSent from my iPhone\n\n" + QUOTED),
    "empty html": ("html", "<div><p>&nbsp;</p><p>\u200b<br></p></div>"),
    "html history": ("html", '<div dir="ltr"><br></div><div class="gmail'
                             '_quote"><div>On Mon, Northwind wrote:</div>'
                             "<blockquote>We sent your key.</blockquote>"
                             "</div>"),
}

LOG = ("activation.log", b"2025-03-03 10:15 activation failed: 403\n")
PROGRAM = ("KeyFix.exe", b"MZ\x90\x00\x03\x00\x00\x00" + bytes(200))


def reply(to: str, sender: str, message_id: str, body: str = "", *,
          subtype: str = "plain",
          files: tuple[tuple[str, bytes], ...] = ()) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = "Re: Licence key never arrived"
    msg["Message-ID"] = message_id
    msg.set_content(body, subtype=subtype)
    for name, data in files:
        msg.add_attachment(data, maintype="application",
                           subtype="octet-stream", filename=name)
    return msg.as_bytes(policy=SMTP)


def send(smtp: smtplib.SMTP, sender: str, to: str, raw: bytes
         ) -> tuple[int, str]:
    assert smtp.mail(sender)[0] == 250
    assert smtp.rcpt(to)[0] == 250
    code, text = smtp.data(raw)
    return code, text.decode()


def answered_and_read(rt: Runtime) -> int:
    """A case the merchant has answered and the merchant has read: an
    empty customer reply would move it back and mark it unread."""
    case_id = open_case(rt)
    with transaction(rt.sessions) as s:
        case = rt.service.lock_case(s, case_id)
        rt.service.add_message(s, case, party=Party.MERCHANT,
                               author_address=MERCHANT,
                               content=Content.typed("Sent again.",
                                                     source="api"))
        rt.service.mark_read(s, case)
    rt.clock.advance(hours=1)  # so that activity would show in the case
    return case_id


def snapshot(rt: Runtime, case_id: int) -> tuple[object, ...]:
    """What an empty reply must leave as it was."""
    with rt.sessions() as s:
        case = s.get(m.Case, case_id)
        assert case is not None
        mails = list(s.scalars(select(m.Outbox.id).where(
            m.Outbox.case_id == case_id)))
        return (case.state, case.unread, case.last_activity_at,
                case.warned_at, mails)


def kept_as_empty(rt: Runtime, message_id: str) -> tuple[m.Message,
                                                         list[str]]:
    """The stored message and the kinds of the events that name it."""
    with rt.sessions() as s:
        message = s.scalars(select(m.Message).where(
            m.Message.message_id == message_id)).one()
        events = list(s.scalars(select(m.Event.kind).where(
            m.Event.message_id == message.id)))
        raw = s.get(m.RawMail, message.raw_mail_id)
        assert raw is not None and raw.status == "empty"
        s.expunge(message)
        return message, events


def test_a_reply_with_nothing_in_it_changes_nothing(
        e2e_runtime: Runtime, smtp: smtplib.SMTP) -> None:
    """Each kind of empty reply, from the customer and from the merchant's
    team: 250, on the timeline as empty, the case and the outbox as they
    were."""
    rt = e2e_runtime
    case_id = answered_and_read(rt)
    before = snapshot(rt, case_id)
    for party, sender in ((Party.CUSTOMER, CUSTOMER),
                          (Party.MERCHANT, MERCHANT)):
        to = rt.signer.reply_address(case_id, party)
        for n, (kind, (subtype, body)) in enumerate(NOTHING.items()):
            message_id = f"<empty-{party}-{n}@mail.example>"
            code, text = send(smtp, sender, to, reply(
                to, sender, message_id, body, subtype=subtype))
            assert (code, text) == (250, replies.EMPTY[4:]), kind
            message, events = kept_as_empty(rt, message_id)
            assert events == ["empty"], kind
            assert message.held and message.party == party, kind
            assert message.new_text.strip("\u200b \n") == "", kind
            assert snapshot(rt, case_id) == before, kind


def test_an_empty_reply_does_not_reopen_a_closed_case(
        e2e_runtime: Runtime, smtp: smtplib.SMTP) -> None:
    rt = e2e_runtime
    case_id = open_case(rt)
    with transaction(rt.sessions) as s:
        case = rt.service.lock_case(s, case_id)
        rt.service.set_status(s, case, party=Party.MERCHANT, state="closed")
        rt.service.mark_read(s, case)
    before = snapshot(rt, case_id)
    to = rt.signer.reply_address(case_id, Party.CUSTOMER)
    code, text = send(smtp, CUSTOMER, to, reply(
        to, CUSTOMER, "<closed@mail.example>", QUOTED))
    assert (code, text) == (250, replies.EMPTY[4:])
    assert snapshot(rt, case_id) == before
    assert before[0] == "closed"


def test_a_file_with_no_text_is_filed(e2e_runtime: Runtime,
                                      smtp: smtplib.SMTP) -> None:
    """A log file and not a word: a message, so the case moves and the
    merchant hears of it."""
    rt = e2e_runtime
    case_id = answered_and_read(rt)
    to = rt.signer.reply_address(case_id, Party.CUSTOMER)
    code, text = send(smtp, CUSTOMER, to, reply(
        to, CUSTOMER, "<log@mail.example>", "", files=(LOG,)))
    assert (code, text) == (250, replies.ACCEPTED[4:])
    with rt.sessions() as s:
        case = s.get(m.Case, case_id)
        assert case is not None
        assert (case.state, case.unread) == ("awaiting_merchant", True)
        last = s.scalars(select(m.Outbox).where(m.Outbox.case_id == case_id)
                         .order_by(m.Outbox.id.desc())).first()
        assert last is not None
        assert (last.template, last.recipient) == ("customer_reply", MERCHANT)


def test_an_empty_reply_with_a_refused_file_tells_only_its_sender(
        e2e_runtime: Runtime, smtp: smtplib.SMTP) -> None:
    """No text and only a program we do not take: nothing to read, so the
    case stays; the customer still learns which file was refused."""
    rt = e2e_runtime
    case_id = answered_and_read(rt)
    state, unread, *_, mails = snapshot(rt, case_id)
    to = rt.signer.reply_address(case_id, Party.CUSTOMER)
    code, text = send(smtp, CUSTOMER, to, reply(
        to, CUSTOMER, "<exe@mail.example>", "", files=(PROGRAM,)))
    assert (code, text) == (250, replies.EMPTY[4:])
    _, events = kept_as_empty(rt, "<exe@mail.example>")
    assert sorted(events) == ["attachment_refused", "empty"]
    after_state, after_unread, *_, after_mails = snapshot(rt, case_id)
    assert (after_state, after_unread) == (state, unread)
    with rt.sessions() as s:
        new = [s.get(m.Outbox, i) for i in after_mails if i not in mails]
        assert [(o.template, o.recipient) for o in new if o] == [
            ("attachment_refused", CUSTOMER)]
