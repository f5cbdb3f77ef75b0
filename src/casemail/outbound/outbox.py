"""The outbox: every mail we send, written in the case's own transaction.

``queue_mail`` never commits. It writes one ``Outbox`` row in the
caller's transaction, so the mail exists exactly when the change that
caused it does: a rolled-back reply sends nothing, a committed one
cannot be lost. The row carries the finished bytes; ``outbound.delivery``
only has to hand them to the relay.

A mail that must not go out is still written, as ``suppressed`` with the
reason in ``last_error``, so the caller can put it on the timeline: the
budget stopped an automated mail, or the customer's address bounced.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    bindparam,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from casemail.addresses import Party, Signer
from casemail.clock import Clock
from casemail.config import Settings
from casemail.db.models import Case, Message, Outbox
from casemail.db.rows import insert_row
from casemail.outbound import budget
from casemail.outbound.compose import REFERENCES_KEEP_LAST, Composer

log = logging.getLogger(__name__)

# Mail that reached, or will reach, its recipient: the ids a client may
# hold and so may thread on.
THREAD_STATUSES = ("queued", "deferred", "sent")

UNREACHABLE = "customer address bounced"


def queue_mail(session: Session, *, composer: Composer, signer: Signer,
               clock: Clock, settings: Settings, case: Case | None,
               template: str, recipient: str, recipient_name: str,
               party: Party, reply_to: str, context: dict[str, Any],
               automated: bool = True,
               auto_submitted: str = "auto-generated",
               attachments: Sequence[tuple[str, str, bytes]] = ()) -> Outbox:
    """Add the mail to the outbox in ``session``'s transaction; return it."""
    now = clock.now()
    recipient = recipient.strip()
    case_id = case.id if case is not None else None
    # The two reads below go straight to the connection, past the
    # session's own bookkeeping, which cost more than the reads themselves.
    # Our own rows are written at once (``db.rows``); a caller that added
    # rows the ORM way has them flushed first, so the reads see them.
    if session.new:
        session.flush()
    reason = _suppression(session, case, party, recipient, automated, now,
                          settings)
    message_id = signer.message_id(case_id or 0, party)
    # Read before the new row exists, so it never names itself.
    chain = _thread_chain(session, case, party)
    context = {"recipient_party": party.value,
               "recipient_name": recipient_name, **context}
    composed = composer.compose_with_subject(
        template=template, context=context, to=recipient,
        to_name=recipient_name, from_addr=settings.from_address,
        from_name=_sender_name(template, party, case, settings),
        reply_to=reply_to, message_id=message_id,
        in_reply_to=chain[-1] if chain else None, references=chain,
        auto_submitted=auto_submitted,
        thread_topic=case.subject if case is not None else "",
        attachments=attachments, date=now)
    row = insert_row(
        session, Outbox,
        case_id=case_id, template=template, recipient=recipient,
        party=party.value, automated=automated, message_id=message_id,
        status="suppressed" if reason else "queued", attempts=0,
        created_at=now, next_attempt_at=now, last_error=reason or "",
        deadline=now + dt.timedelta(seconds=settings.relay.retry_deadline),
        claimed_by="", dsn_status="", dsn_diagnostic="",
        subject=composed.subject[:998], envelope_from="", data=composed.data)
    # The id names the envelope sender (VERP), which the message itself
    # never carries: Return-Path is the final delivery's to write.
    sender = signer.envelope_sender(row.id)
    session.connection().execute(_SET_SENDER, {"row": row.id,
                                               "sender": sender})
    set_committed_value(row, "envelope_from", sender)
    log.info("%s case %s: %s to %s %s%s", row.message_id, case_id, template,
             party.value, row.status, f" ({reason})" if reason else "")
    return row


_SET_SENDER = (update(Outbox.__table__)
               .where(Outbox.__table__.c.id == bindparam("row"))
               .values(envelope_from=bindparam("sender")))


def _suppression(session: Session, case: Case | None, party: Party,
                 recipient: str, automated: bool, now: dt.datetime,
                 settings: Settings) -> str | None:
    # A permanent bounce made the case stop writing to the customer; more
    # mail would only bounce again and hurt our reputation with the relay.
    if case is not None and case.customer_unreachable \
            and party is Party.CUSTOMER:
        return UNREACHABLE
    if not automated:
        return None
    return budget.allow(session, recipient=recipient,
                        case_id=case.id if case is not None else None,
                        now=now, settings=settings)


def _thread_chain(session: Session, case: Case | None,
                  party: Party) -> list[str]:
    """The case's Message-IDs, oldest first, that ``party`` has seen.

    Gmail threads a mail only on ids already in the recipient's mailbox,
    so the chain prefers the mails sent to this party and those it wrote
    itself (they sit in its Sent folder); a party with neither yet gets the
    whole case thread, which Apple Mail and Outlook still use. Only the
    ends of the chain are read: References keeps no more.
    """
    if case is None:
        return []
    seen = _chain_ends(session, _SEEN_BY_PARTY,
                       {"case_id": case.id, "party": party.value})
    return seen or _chain_ends(session, _WHOLE_THREAD, {"case_id": case.id})


def _chain_ends(session: Session, statement: CompoundSelect,
                values: dict[str, object]) -> list[str]:
    rows = session.connection().execute(statement, values)
    entries = {tuple(row) for row in rows}
    ids = (_bracketed(mid) for _at, _src, _row, mid in sorted(entries))
    return [i for i in ids if i]


def _ends_statement(by_party: bool) -> CompoundSelect:
    """The newest few and the very first of the mails we sent in a case
    and of those we received, in one statement; with ``by_party``, only
    those sent to or written by one party.

    Built once per kind: every queued mail runs one, and SQLAlchemy then
    reuses the compiled form without walking the statement again.
    """
    sent = (select(Outbox.created_at.label("at"), literal(0).label("src"),
                   Outbox.id.label("row"), Outbox.message_id.label("mid"))
            .where(Outbox.case_id == bindparam("case_id"),
                   Outbox.status.in_(THREAD_STATUSES)))
    received = (select(Message.created_at.label("at"), literal(1).label("src"),
                       Message.id.label("row"), Message.message_id.label("mid"))
                .where(Message.case_id == bindparam("case_id"),
                       Message.message_id != ""))
    if by_party:
        sent = sent.where(Outbox.party == bindparam("party"))
        received = received.where(Message.party == bindparam("party"))
    ends = []
    for stmt, model in ((sent, Outbox), (received, Message)):
        newest = stmt.order_by(model.created_at.desc(), model.id.desc())
        oldest = stmt.order_by(model.created_at, model.id)
        for query in (newest.limit(REFERENCES_KEEP_LAST), oldest.limit(1)):
            ends.append(select(query.subquery()))
    return union_all(*ends)


_SEEN_BY_PARTY = _ends_statement(by_party=True)
_WHOLE_THREAD = _ends_statement(by_party=False)


def _bracketed(message_id: str) -> str:
    value = message_id.strip()
    if not value or any(c.isspace() for c in value):
        return ""
    return value if value.startswith("<") else f"<{value}>"


def _sender_name(template: str, party: Party, case: Case | None,
                 settings: Settings) -> str:
    # Every mail comes from our own address (the store's domain has not
    # authorised us, so DMARC would fail); the display name says who
    # speaks.
    if template == "staff_message":
        return f"{settings.platform_name} Support"
    if case is None:
        return settings.platform_name
    if party is Party.MERCHANT:
        who = case.customer_name or case.customer_address
        return f"{who} via {settings.platform_name}"
    return case.store.name
