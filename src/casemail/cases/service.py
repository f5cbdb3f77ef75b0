"""The only place a case changes.

Every caller — the mail pipeline, the command line, the API, the sweep —
opens a transaction, asks this service for the change, and commits. The
service locks the case row, checks the move against the transition table,
writes the timeline, and queues every mail the change causes in that same
transaction (``cases.notify``), so a change and its notifications land
together or not at all.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from casemail.addresses import Party, Signer, is_mail_address
from casemail.cases import notify, timeline
from casemail.cases.content import Content
from casemail.cases.states import (
    CUSTOMER_STATUS_EVENT,
    MERCHANT_STATUS_EVENT,
    Event,
    Priority,
    State,
    is_reopening,
    next_state,
)
from casemail.clock import Clock
from casemail.config import Settings
from casemail.db import models as m
from casemail.db.rows import insert_row, update_row
from casemail.errors import CaseError, InvalidTransition, NotAllowed, UnknownCase
from casemail.mime.filestore import store_file
from casemail.outbound.compose import Composer

log = logging.getLogger(__name__)

_MESSAGE_EVENT = {
    Party.CUSTOMER: Event.CUSTOMER_MESSAGE,
    Party.MERCHANT: Event.MERCHANT_MESSAGE,
    Party.STAFF: Event.STAFF_MESSAGE,
}


# The case, locked, with its store and the store's team in the same round
# trip: every message needs them (who may answer, whom to notify). Built
# once, as every mail runs it.
# PostgreSQL: FOR NO KEY UPDATE, the lock for changing a row's other
# columns. It still keeps two writers of one case in turn, but not a
# transaction that has only written a row naming the case (a raw mail,
# which takes FOR KEY SHARE on it): with FOR UPDATE, two of those
# waiting for each other's case lock would deadlock.
_LOCK_CASE = (
    select(m.Case).where(m.Case.id == bindparam("case_id"))
    .options(joinedload(m.Case.store, innerjoin=True)
             .joinedload(m.Store.members))
    .with_for_update(of=m.Case, key_share=True))

# Several cases the same way, locked lowest id first: PostgreSQL locks the
# rows as the sort hands them over.
_LOCK_CASES = (
    select(m.Case).where(m.Case.id.in_(bindparam("case_ids", expanding=True)))
    .order_by(m.Case.id)
    .options(joinedload(m.Case.store, innerjoin=True)
             .joinedload(m.Store.members))
    .with_for_update(of=m.Case, key_share=True))

# Filed messages of the case with the same Message-ID and new text from
# the same side, and the files of one: what a second copy of a mail
# repeats. Held, empty and automated messages were never filed, so a
# copy of one is not turned away.
_SAME_MESSAGE = (
    select(m.Message.id)
    .where(m.Message.case_id == bindparam("case_id"),
           m.Message.message_id == bindparam("message_id"),
           m.Message.party == bindparam("party"),
           m.Message.new_text == bindparam("new_text"),
           m.Message.held.is_(False),
           m.Message.kind == "human"))
_FILES_OF = select(m.Attachment.sha256).where(
    m.Attachment.message_id == bindparam("message"))

# Where a session keeps the cases ``lock_cases_in_order`` has locked:
# (the transaction that holds the locks, {case id: case}).
_HELD = "casemail.locked_cases"


class CaseService:
    def __init__(self, settings: Settings, signer: Signer, clock: Clock,
                 composer: Composer) -> None:
        self.settings = settings
        self.signer = signer
        self.clock = clock
        self.mail = notify.Notifier(settings, signer, clock, composer)

    # -- finding ------------------------------------------------------------

    def lock_case(self, s: Session, case_id: int) -> m.Case:
        """The case, locked for this transaction (no lost updates), with
        its store and team loaded.

        Changes still pending in the session are left for the next
        flush: a case already in it is given back as it stands there,
        and the lock concerns only the row. A batch of mails then writes
        its cases' changes in one flush, not in one per mail."""
        held = s.info.get(_HELD)
        if held is not None and held[0] is s.get_transaction() \
                and case_id in held[1]:
            return held[1][case_id]  # locked and loaded with the batch
        with s.no_autoflush:
            case = s.scalars(_LOCK_CASE, {"case_id": case_id}
                             ).unique().one_or_none()
        if case is None:
            raise UnknownCase(f"no case {case_id}")
        return case

    def lock_cases_in_order(self, s: Session, case_ids: Iterable[int]
                            ) -> None:
        """Lock and load several cases at once, lowest id first, for a
        transaction that will change them one by one in some other
        order (a batch of mails, one mail to several cases).

        On PostgreSQL two such transactions that met on the same cases
        in other orders would each hold one and wait for the other's:
        a deadlock, and all their mails answered 451. Taken in one
        order, the second simply waits for the first. SQLite lets one
        writer in at a time and needs no order, but gains as much from
        the one statement: ``lock_case`` then finds each case, for the
        rest of this transaction, without asking the database again."""
        ids = sorted(set(case_ids))
        if not ids:
            return
        with s.no_autoflush:
            cases = s.scalars(_LOCK_CASES, {"case_ids": ids}).unique().all()
        # The session's own transaction, not a savepoint's: the locks
        # last until it ends, and a later one must lock again.
        s.info[_HELD] = (s.get_transaction(),
                         {case.id: case for case in cases})

    def copy_of(self, s: Session, case: m.Case, party: Party,
                content: Content) -> int | None:
        """The id of the filed message in ``case`` that ``content``
        repeats: the same Message-ID, new text and files, from the same
        side.

        One mail reaches a case twice when a person answers to all (our
        notification's reply address and its sender both lead to the
        case) or when a relay sends a second copy with a trace header of
        its own: other bytes, so another idempotency key, but the same
        message, to be filed once. Text and files are compared too, so
        that a client that gives every mail one Message-ID loses
        nothing; so is the filing, so that the copy of a message that
        was held or only recorded can still be filed."""
        if not content.message_id:
            return None
        conn = s.connection()
        found = conn.execute(_SAME_MESSAGE, {
            "case_id": case.id, "message_id": content.message_id[:998],
            "party": party.value, "new_text": content.new_text}).scalars()
        files = sorted(part.sha256 for part in content.attachments)
        for earlier in list(found):
            if sorted(conn.execute(_FILES_OF, {"message": earlier})
                      .scalars()) == files:
                return int(earlier)
        return None

    def store(self, s: Session, slug: str) -> m.Store:
        store = s.scalars(select(m.Store).where(m.Store.slug == slug)).first()
        if store is None:
            raise UnknownCase(f"no store {slug!r}")
        return store

    def is_team_member(self, store: m.Store, address: str) -> bool:
        address = address.strip().lower()
        return any(member.address == address for member in store.members)

    # -- opening ------------------------------------------------------------

    def open_case(self, s: Session, *, store_slug: str, order_ref: str,
                  customer_address: str, customer_name: str, subject: str,
                  content: Content, priority: str = "normal") -> m.Case:
        """A customer opens a case (through the portal, on their behalf)."""
        order_ref, subject = order_ref.strip(), subject.strip()
        customer_address = customer_address.strip()
        _check_opening(order_ref, subject, customer_address, customer_name)
        if content.empty:
            raise CaseError(_nothing_said(content))
        store = self.store(s, store_slug)
        now = self.clock.now()
        case = m.Case(
            store=store, order_ref=order_ref,
            customer_address=customer_address,
            customer_name=customer_name, subject=subject,
            state=State.AWAITING_MERCHANT, priority=Priority(priority),
            unread=True, created_at=now, last_activity_at=now)
        s.add(case)
        s.flush()
        self._event(s, case, "opened", Party.CUSTOMER, customer_address,
                    state=State.AWAITING_MERCHANT, priority=case.priority)
        content.subject = content.subject or subject
        message = self._store_message(s, case, Party.CUSTOMER,
                                      customer_address, customer_name, content)
        self.mail.to_merchant(s, case, "new_case", message)
        if store.auto_reply_enabled and store.auto_reply_text.strip():
            self.mail.auto_reply(s, case)
        log.info("case %s opened for store %s (order %s)",
                 case.id, store.slug, order_ref)
        return case

    # -- messages -----------------------------------------------------------

    def add_message(self, s: Session, case: m.Case, *, party: Party,
                    author_address: str, author_name: str = "",
                    content: Content) -> m.Message:
        """A person on one side wrote: file it, move the case, tell the other.

        Automated mail goes to ``record_automated`` instead; a merchant-side
        message from an address outside the team goes to ``hold``; mail
        with nothing in it goes to ``record_empty``.
        """
        if content.automated:
            raise CaseError("automated mail cannot move a case")
        if content.empty:
            raise CaseError(_nothing_said(content))
        if party is Party.SYSTEM:
            raise NotAllowed("the system does not write messages")
        before = State(case.state)
        after = next_state(before, _MESSAGE_EVENT[party])
        message = self._store_message(s, case, party, author_address,
                                      author_name, content)
        self._move(s, case, after, party, author_address, message=message)
        self._touch(case)

        if party is Party.CUSTOMER:
            case.unread = True
            self._reachable_again(s, case, author_address, content)
            self.mail.to_merchant(s, case, "customer_reply", message,
                                  reopened=is_reopening(before, after))
        elif party is Party.MERCHANT:
            self.mail.merchant_reply(s, case, message)
        else:
            self._staff_join(s, case, author_address)
            case.unread = True
            self.mail.staff_message(s, case, message)
        if content.refused and content.source == "email":
            self.mail.refused_notice(s, case, party, author_address,
                                     content.refused)
        return message

    def _reachable_again(self, s: Session, case: m.Case, address: str,
                         content: Content) -> None:
        """A customer whose mail bounced for good wrote to us again, by
        mail, from that same address: the address works again (a full
        mailbox emptied, a suspended account restored), and our mail goes
        to it again. A message typed on the portal proves nothing of the
        kind."""
        if not case.customer_unreachable or content.source != "email":
            return
        if address.strip().lower() != case.customer_address.strip().lower():
            return
        case.customer_unreachable = False
        self._event(s, case, "customer_reachable", Party.CUSTOMER, address)
        log.info("%s case %s: the customer's address works again",
                 content.message_id, case.id)

    def hold(self, s: Session, case: m.Case, *, party: Party,
             author_address: str, author_name: str, content: Content,
             reason: str) -> m.Message:
        """Keep a message that may not act on the case: visible, inert."""
        message = self._store_message(s, case, party, author_address,
                                      author_name, content, held=reason)
        self._event(s, case, "held", party, author_address,
                    message=message, reason=reason)
        log.info("%s case %s: held: %s", content.message_id, case.id, reason)
        return message

    def record_empty(self, s: Session, case: m.Case, *, party: Party,
                     author_address: str, author_name: str,
                     content: Content) -> m.Message:
        """A person sent nothing to read (``Content.empty``): kept and
        shown, but the case stays as it was and the other side hears
        nothing of it. Only a refused file is still explained to its
        sender, who may send it again in a form we take."""
        reason = "no new text and no file kept"
        message = self._store_message(s, case, party, author_address,
                                      author_name, content, held=reason)
        self._event(s, case, "empty", party, author_address,
                    message=message, reason=reason)
        if content.refused and content.source == "email":
            self.mail.refused_notice(s, case, party, author_address,
                                     content.refused)
        log.info("%s case %s: empty, nothing filed", content.message_id,
                 case.id)
        return message

    def record_automated(self, s: Session, case: m.Case, *, party: Party,
                         author_address: str, content: Content) -> m.Message:
        """Mail no person wrote: on the timeline, and nothing else at all."""
        message = self._store_message(s, case, party, author_address, "",
                                      content)
        self._event(s, case, "automated", party, author_address,
                    message=message, verdict=content.kind, rules=content.rules)
        return message

    def record_bounce(self, s: Session, outbox: m.Outbox, *, status: str,
                      diagnostic: str, permanent: bool,
                      content: Content) -> None:
        """A report says one of our mails could not be delivered."""
        # Written at once (``db.rows``), not at the next flush: a mail
        # queued later in the same transaction reads the References
        # chain straight from the database, and a bounced mail must
        # have left it by then.
        update_row(s, outbox,
                   status="bounced" if permanent else outbox.status,
                   dsn_status=status, dsn_diagnostic=diagnostic[:2000])
        if outbox.case_id is None:
            return
        case = self.lock_case(s, outbox.case_id)
        message = self._store_message(s, case, Party.SYSTEM, "", "", content)
        self._event(s, case, "delivery_problem", Party.SYSTEM, outbox.recipient,
                    message=message, outbox_id=outbox.id, status=status,
                    diagnostic=diagnostic[:500], permanent=permanent,
                    recipient=outbox.recipient)
        if permanent and outbox.party == Party.CUSTOMER:
            case.customer_unreachable = True
            case.unread = True  # the merchant must see it

    # -- status, priority, read ---------------------------------------------

    def set_status(self, s: Session, case: m.Case, *, party: Party,
                   state: State | str, actor_address: str = "") -> None:
        target = State(state)
        table = {Party.MERCHANT: MERCHANT_STATUS_EVENT,
                 Party.CUSTOMER: CUSTOMER_STATUS_EVENT}.get(party)
        if table is None or target not in table:
            raise InvalidTransition(
                f"the {party.value} cannot set a case to {target.value}")
        before = State(case.state)
        after = next_state(before, table[target])
        self._move(s, case, after, party, actor_address)
        self._touch(case)
        if after is State.CLOSED:
            self.mail.closed(s, case, closed_by=party)
        elif is_reopening(before, after):
            self.mail.reopened(s, case, reopened_by=party)

    def auto_close(self, s: Session, case: m.Case) -> None:
        """The idle period ran out (the sweep checked that it still has)."""
        self._move(s, case, next_state(case.state, Event.AUTO_CLOSE),
                   Party.SYSTEM, "", reason="idle")
        self.mail.closed(s, case, closed_by=Party.SYSTEM)

    def warn(self, s: Session, case: m.Case, close_at: dt.datetime) -> None:
        """Tell the customer the case closes at ``close_at`` unless they reply."""
        # One warning per idle stretch, whoever asks (the sweep re-checks
        # under the row lock; this keeps any other caller honest too).
        if case.state != State.AWAITING_CUSTOMER or case.warned_at is not None:
            raise InvalidTransition(
                f"case {case.id} is not due a warning ({case.state}, "
                f"warned {case.warned_at})")
        case.warned_at = self.clock.now()
        self.mail.close_warning(s, case, close_at)

    def set_priority(self, s: Session, case: m.Case, priority: str, *,
                     party: Party, actor_address: str = "") -> None:
        new = Priority(priority)
        if new == case.priority:
            return
        self._event(s, case, "priority_changed", party, actor_address,
                    before=case.priority, after=new)
        case.priority = new

    def mark_read(self, s: Session, case: m.Case, *,
                  actor_address: str = "") -> None:
        if not case.unread:
            return
        case.unread = False
        self._event(s, case, "marked_read", Party.MERCHANT, actor_address)

    # -- inside -------------------------------------------------------------

    def _move(self, s: Session, case: m.Case, after: State, party: Party,
              actor: str, *, message: m.Message | None = None,
              **detail: object) -> None:
        before = State(case.state)
        if after is before:
            return
        case.state = after
        now = self.clock.now()
        self._event(s, case, "state_changed", party, actor, message=message,
                    before=before, after=after, **detail)
        if after is State.CLOSED:
            case.closed_at = now
            self._event(s, case, "closed", party, actor, **detail)
        elif before is State.CLOSED:
            case.closed_at = None
            self._event(s, case, "reopened", party, actor)

    def _touch(self, case: m.Case) -> None:
        """Activity: a new idle stretch starts, with no warning sent yet."""
        case.last_activity_at = self.clock.now()
        case.warned_at = None

    def _staff_join(self, s: Session, case: m.Case, address: str) -> None:
        if case.staff_joined:
            return
        case.staff_joined = True
        self._event(s, case, "staff_joined", Party.STAFF, address)

    def _store_message(self, s: Session, case: m.Case, party: Party,
                       address: str, name: str, content: Content, *,
                       held: str = "") -> m.Message:
        # Written at once (``db.rows``): the events after it name it by
        # id, and the notification finds the attachments without loading
        # them back.
        message = insert_row(
            s, m.Message,
            case_id=case.id, raw_mail_id=content.raw_mail_id, party=party,
            author_address=address[:320], author_name=name[:200],
            subject=content.subject[:998], new_text=content.new_text,
            removed_text=content.removed_text, full_text=content.full_text,
            html=content.html, message_id=content.message_id[:998],
            kind=content.kind, rules=list(content.rules),
            defects=list(content.defects), held=bool(held), hold_reason=held,
            source=content.source, created_at=self.clock.now())
        set_committed_value(message, "attachments",
                            self._attachments(s, message, content))
        if not held and not content.automated:
            self._event(s, case, "message", party, address, message=message)
        for part in content.attachments:
            if not part.kept:
                self._event(s, case, "attachment_refused", message.party,
                            message.author_address, message=message,
                            filename=part.filename,
                            content_type=part.content_type,
                            reason=part.reason)
        return message

    def _attachments(self, s: Session, message: m.Message,
                     content: Content) -> list[m.Attachment]:
        files_dir: Path = self.settings.files_dir
        rows = []
        for part in content.attachments:
            if part.kept:
                # Written and synced before the commit that names it;
                # mail from the listener had it written while it was
                # read (``Pipeline.read``), and this finds it there.
                store_file(files_dir, part.data, part.sha256)
            rows.append(insert_row(
                s, m.Attachment, message_id=message.id,
                filename=part.filename[:500],
                safe_name=part.safe_name[:255],
                declared_type=part.declared_type[:255],
                content_type=part.content_type[:255], size=part.size,
                sha256=part.sha256, kept=part.kept, reason=part.reason,
                inline=part.inline, content_id=part.content_id[:998],
                details=dict(part.details)))
        return rows

    def _event(self, s: Session, case: m.Case, kind: str, party: Party | str,
               actor: str, **detail: object) -> None:
        timeline.record(s, self.clock, case, kind, str(party), actor,
                        **detail)  # type: ignore[arg-type]


def _check_opening(order_ref: str, subject: str, customer_address: str,
                   customer_name: str) -> None:
    """Refuse what no case can be opened with, in one line that names
    the field and says what is wanted."""
    if not order_ref:
        raise CaseError("the order reference is empty: give the order the "
                        "case is about (like NW-10421)")
    if not subject:
        raise CaseError("the subject is empty: say in a few words what the "
                        "case is about")
    if not is_mail_address(customer_address):
        raise CaseError(f"the customer address {customer_address!r} is not "
                        "a mail address (like lena@example.net)")
    # The database keeps this much of each; PostgreSQL would refuse more
    # with an error that names no field, SQLite would keep it all.
    for field, value, column in (
            ("order reference", order_ref, m.Case.order_ref),
            ("subject", subject, m.Case.subject),
            ("customer address", customer_address, m.Case.customer_address),
            ("customer name", customer_name, m.Case.customer_name)):
        limit = column.type.length
        if len(value) > limit:
            raise CaseError(f"the {field} is {len(value)} characters long: "
                            f"give at most {limit}")


def _nothing_said(content: Content) -> str:
    refused = ", ".join(f"{a.filename or 'a file'} ({a.reason})"
                        for a in content.refused)
    if refused:
        return ("the message has no text and no file was kept: "
                f"{refused}; write the message, or attach a file of an "
                "allowed type")
    return "the message is empty: write the message, or attach a file"
