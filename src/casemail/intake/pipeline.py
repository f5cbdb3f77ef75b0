"""Raw bytes → kept → read → classified → threaded → applied.

One call per envelope recipient, run in a worker thread (never on the event
loop). Every mail ends in a named outcome:

    filed        a person's message moved its case
    held         stored and visible, but changed nothing (unknown merchant
                 sender)
    empty        a person's reply with no new text and no file kept:
                 stored and visible, moved nothing, notified no one
    ignored      automated mail (auto-reply, bounce, list, loop): recorded
                 on the timeline, moved nothing
    duplicate    the same bytes for the same recipient were kept before
                 (``rawstore``); answered 250, filed once
    quarantined  accepted, but applying it failed; kept with the error,
                 retried by the gateway up to ``max_processing_attempts``,
                 then left for ``casemail reprocess``
    postmaster   for postmaster@ the reply domain: kept for a person,
                 applied to no case (RFC 5321 4.5.1)
    refused      belongs to no case; answered 550, nothing kept
    failed       nothing could be kept (the database is away); answered
                 4xx so the sending server tries again

The raw mail, the message and the case change commit in one transaction,
and the listener answers ``250`` only after that commit. A quarantined
mail commits its raw bytes and error after its failed attempt rolled
back, and is answered ``250`` only after that.

``process`` files one mail in a transaction of its own. ``process_batch``
files several in one transaction: the listener hands it whatever mails
arrived while the previous batch was being written (``intake.batching``),
and the commit, the write lock and their waits are paid once for all of
them. A batch is first written as one piece; when a mail of it does not
file cleanly, it is written again with each mail inside a savepoint of
its own, so that one mail's failure undoes only that mail.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from casemail.addresses import Party
from casemail.cases.content import Content
from casemail.cases.threading import Route, candidate_threads, find_thread
from casemail.classify import classify
from casemail.db import models as m
from casemail.db.engine import transaction, writer_lock
from casemail.db.rows import update_row
from casemail.errors import AddressError, MailRefused, UnknownCase
from casemail.intake import bounces, rawstore, replies
from casemail.intake.filing import (
    Filing,
    Outcome,
    Reading,
    database_away,
    failed_outcome,
    lost_a_deadlock,
    mail_id,
    mail_ids,
)
from casemail.intake.rawstore import Envelope, idempotency_key
from casemail.intake.routing import Router
from casemail.mime.filestore import store_file
from casemail.mime.model import ReadMail
from casemail.mime.reader import read_mail
from casemail.runtime import Runtime

log = logging.getLogger(__name__)

# Times a batch is written when PostgreSQL breaks a deadlock with it.
DEADLOCK_ATTEMPTS = 3

__all__ = ["Envelope", "Filing", "Outcome", "Pipeline", "Reading",
           "failed_outcome", "idempotency_key"]


class Pipeline:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        # Reading and classifying stay outside it and run in parallel.
        self._one_writer = writer_lock(runtime.engine)
        self.router = Router(runtime)

    def read(self, raw: bytes, mail_from: str | None,
             routes: Sequence[Route] = ()) -> Reading:
        """Read and classify the mail once, for all its recipients
        (``routes``, where each goes)."""
        s = self.rt.settings
        mail = read_mail(raw, max_attachment_size=s.max_attachment_size,
                         max_attachments_total=s.max_attachments_total)
        verdict = classify(mail, envelope_from=mail_from,
                           own_domain=s.reply_domain)
        raw_file = ""
        if self._bound_for_a_case(routes, mail):
            self._write_files(mail)
            raw_file = rawstore.store_in_file(s.files_dir, raw)
        return Reading(mail, verdict, raw_file)

    def _bound_for_a_case(self, routes: Sequence[Route],
                          mail: ReadMail) -> bool:
        """Whether a recipient's address, or the references the mail
        answers, name a case: the mail will then nearly always be filed
        (or held, or recorded), naming its files. Mail for no case
        (refused with 550), for the postmaster or to a bounce address
        has its files written by the transaction, if at all, so that a
        stranger's mail leaves nothing on disk. A reply address's case
        was found at RCPT; a case named by references only is looked up
        here (remembered once seen, as at RCPT)."""
        return any(thread.via == "token"
                   or self.router.case_exists(thread.case_id)
                   for route in routes
                   for thread in candidate_threads(self.rt.signer, route,
                                                   mail))

    def _write_files(self, mail: ReadMail) -> None:
        """Write the files to keep now, outside the write lock: syncing
        one to disk takes a few tenths of a millisecond that the mails
        queued behind the lock would otherwise wait for. The transaction
        finds them there (``store_file`` is content-addressed, once).
        A large raw mail is written the same way (``rawstore``).

        XXX: a mail bound for a case that is then not filed after all
        (an operator's reprocess that refuses it) leaves its files on
        disk named by nothing; nothing removes such files yet."""
        files_dir = self.rt.settings.files_dir
        for part in mail.attachments:
            if not part.kept:
                continue
            try:
                store_file(files_dir, part.data, part.sha256)
            except OSError as exc:
                # Tried again inside the transaction, which then fails
                # and keeps the mail in quarantine with the reason.
                log.warning("%s: file %s not written yet: %s",
                            mail.message_id, part.sha256[:12], exc)

    def process(self, raw: bytes, envelope: Envelope, route: Route,
                reading: Reading | None = None, *,
                by_person: bool = False) -> Outcome:
        """File one mail for one recipient; never raises.

        ``by_person``: an operator asked for it (``casemail reprocess``),
        so a quarantined mail is applied again even past the limit.
        """
        try:
            reading = reading or self.read(raw, envelope.mail_from, [route])
        except Exception:
            reading = None  # read again below, and quarantined
        filing = Filing(raw, envelope, route, reading)
        with self._one_writer:
            try:
                return self._settle(filing, self._own_transaction, by_person)
            except _BatchLost as lost:
                return failed_outcome(lost.error)

    def process_batch(self, filings: Sequence[Filing]) -> list[Outcome]:
        """File several mails in one transaction, one outcome each, in
        order; never raises.

        Nearly every batch is new mail that files cleanly, and it is
        written as such: all of it in one session, with nothing between
        one mail and the next. Should any mail not go through (refused,
        kept before, a fault), that attempt is undone as a whole and the
        batch is written again with each mail in a savepoint of its own,
        so that a mail refused or quarantined undoes only its own part.
        When the database itself fails, nothing of the batch is kept and
        every mail is answered as failed, so each sender tries again."""
        with self._one_writer:
            for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
                try:
                    return self._write_batch(filings)
                except Exception as exc:  # the commit, or the database
                    error = exc.error if isinstance(exc, _BatchLost) else exc
                    if lost_a_deadlock(error) \
                            and attempt < DEADLOCK_ATTEMPTS:
                        # Nothing of it was kept: written again at once.
                        log.warning("batch chosen as a deadlock victim, "
                                    "written again: %s", mail_ids(filings))
                        continue
                    log.error("a batch of %s mails was not kept (%s): %s",
                              len(filings), type(error).__name__,
                              mail_ids(filings))
                    return [failed_outcome(error)] * len(filings)
        raise AssertionError("unreachable")

    def _write_batch(self, filings: Sequence[Filing]) -> list[Outcome]:
        try:
            return self._all_at_once(filings)
        except _NotAtOnce as why:
            # What that attempt logged was undone with it.
            log.info("batch undone, written again mail by mail (%s): %s",
                     why, mail_ids(filings))
        with transaction(self.rt.sessions) as outer:
            self._lock_cases(outer, filings)
            unit = functools.partial(_savepoint, self.rt.sessions,
                                     outer.connection())
            return [self._settle(f, unit, False, in_batch=True)
                    for f in filings]

    def _lock_cases(self, s: Session, filings: Sequence[Filing]) -> None:
        """The cases the batch's mails name (by their address, or by
        the references they answer), locked in one order
        (``CaseService.lock_cases_in_order``)."""
        ids = []
        for f in filings:
            if f.reading is not None:
                thread = find_thread(self.rt.signer, f.route, f.reading.mail)
                if thread is not None:
                    ids.append(thread.case_id)
        self.rt.service.lock_cases_in_order(s, ids)

    def _all_at_once(self, filings: Sequence[Filing]) -> list[Outcome]:
        """The batch in one session, each mail taken as new and filed.

        Raises ``_NotAtOnce``, with nothing kept, as soon as a mail needs
        more than that; the commit's own failure passes through."""
        outcomes = []
        with self.rt.sessions() as s:
            s.begin()
            whole = functools.partial(contextlib.nullcontext, s)
            try:
                self._lock_cases(s, filings)
                for f in filings:
                    if f.reading is None:
                        raise _NotAtOnce("a mail could not be read")
                    outcomes.append(self._file(
                        f.raw, f.envelope, f.route, f.reading, f.key, False,
                        whole, new=True))
                # Changes still pending (a case's, an outbox row's) go to
                # the database here, so that a value it refuses undoes
                # this attempt instead of failing the commit for all.
                s.flush()
            except Exception as exc:
                s.rollback()
                if isinstance(exc, DBAPIError) and database_away(exc):
                    raise _BatchLost(exc) from exc
                raise _NotAtOnce(f"{type(exc).__name__}: {exc}") from exc
            s.commit()
        return outcomes

    def _own_transaction(self) -> AbstractContextManager[Session]:
        return transaction(self.rt.sessions)

    def _settle(self, f: Filing, unit: Unit, by_person: bool, *,
                in_batch: bool = False) -> Outcome:
        key = f.key
        reading = f.reading
        try:
            reading = reading or self.read(f.raw, f.envelope.mail_from,
                                           [f.route])
            return self._file_once(f.raw, f.envelope, f.route, reading, key,
                                   by_person, unit)
        except MailRefused as exc:
            return Outcome("refused", replies.for_error(exc, where="DATA"))
        except IntegrityError as exc:
            return self._after_conflict(f.raw, f.envelope, key, reading,
                                        exc, unit, in_batch)
        except DBAPIError as exc:
            if database_away(exc):
                # Nothing was kept: the sender keeps the mail and tries
                # again. In a batch the whole transaction is in doubt, so
                # all of it goes (``process_batch``).
                raise _BatchLost(exc) from exc
            # The database refused this mail's data (a value it cannot
            # hold): its savepoint is undone, and it is kept like any
            # other fault of ours, not retried for ever with its batch.
            return self._quarantine(f.raw, f.envelope, key, reading, exc,
                                    unit, in_batch)
        except Exception as exc:  # a fault of ours: keep the mail, say so
            return self._quarantine(f.raw, f.envelope, key, reading, exc,
                                    unit, in_batch)

    # -- the one transaction ----------------------------------------------

    def _file_once(self, raw: bytes, env: Envelope, route: Route,
                   reading: Reading, key: str, by_person: bool,
                   unit: Unit) -> Outcome:
        """Nearly every mail is new: it is kept without first looking for
        an earlier copy, and the raw mail's unique key says when there
        was one. Only then is the transaction done again, this time
        with the earlier copy in hand (a redelivery, a quarantined mail
        tried again, another instance a moment before us)."""
        if by_person:
            return self._file(raw, env, route, reading, key, by_person, unit)
        try:
            return self._file(raw, env, route, reading, key, by_person,
                              unit, new=True)
        except IntegrityError as exc:
            log.debug("%s kept before? (%s)", reading.mail.message_id,
                      type(exc.orig).__name__)
        return self._file(raw, env, route, reading, key, by_person, unit)

    def _file(self, raw: bytes, env: Envelope, route: Route, reading: Reading,
              key: str, by_person: bool, unit: Unit, *,
              new: bool = False) -> Outcome:
        mid = reading.mail.message_id
        with unit() as s:
            earlier = None if new else rawstore.find(s, key, lock=True)
            if earlier is not None and not self._again(earlier, by_person):
                log.info("%s duplicate of raw mail %s (%s)", mid,
                         earlier.id, earlier.status)
                return Outcome("duplicate", replies.DUPLICATE,
                               earlier.case_id, earlier.id)
            # Nearly every new mail is filed in the case its address
            # names: the row says so from the start, and is written
            # again only when this mail turns out otherwise.
            row = earlier or rawstore.keep(
                s, raw, env, key, self.rt.clock.now(), status="filed",
                outcome=replies.ACCEPTED[4:], case_id=route.case_id,
                in_file=reading.raw_file)
            status, reply, case_id = self._apply(s, row, route, reading)
            final = {"status": status, "outcome": reply[4:],
                     "case_id": case_id, "error": ""}
            if any(getattr(row, k) != v for k, v in final.items()):
                update_row(s, row, **final)
        log.info("%s case %s: %s (%s)", mid, case_id, status,
                 ",".join(reading.verdict.rules) or "human")
        return Outcome(status, reply, case_id, row.id)

    def _again(self, row: m.RawMail, by_person: bool) -> bool:
        """Whether a mail kept before is applied once more."""
        if by_person:
            return row.status == rawstore.QUARANTINED
        return rawstore.may_retry(row, self.rt.settings.max_processing_attempts)

    def _apply(self, s: Session, row: m.RawMail, route: Route,
               reading: Reading) -> tuple[str, str, int | None]:
        if route.kind == rawstore.POSTMASTER:
            log.info("%s kept for the postmaster", reading.mail.message_id)
            return rawstore.POSTMASTER, replies.FOR_POSTMASTER, None
        mail, verdict = reading.mail, reading.verdict
        content = Content.from_mail(mail, kind=verdict.kind,
                                    rules=verdict.rules, raw_mail_id=row.id)
        if route.kind == "bounce" or verdict.bounce is not None:
            handled = bounces.apply(self.rt, s, route, reading.mail,
                                    reading.verdict, content)
            if handled is not None:
                return handled
        service = self.rt.service
        for thread in candidate_threads(self.rt.signer, route, mail):
            try:
                case = service.lock_case(s, thread.case_id)
                break
            except UnknownCase:
                # Our own signed reference, to a case this database does
                # not hold (restored from a backup, a key shared with
                # another installation): the next one, if any.
                continue
        else:
            raise MailRefused(replies.NO_THREAD[10:], code=550, status="5.1.1")
        copy_of = service.copy_of(s, case, thread.party, content)
        if copy_of is not None:
            log.info("%s case %s: a copy of message %s, not filed again",
                     mail.message_id, case.id, copy_of)
            return rawstore.DUPLICATE, replies.DUPLICATE, case.id
        author = mail.sender.address if mail.sender else ""
        name = mail.sender.name if mail.sender else ""
        if content.automated:
            service.record_automated(s, case, party=thread.party,
                                     author_address=author, content=content)
            return "ignored", replies.RECORDED, case.id
        if (thread.party is Party.MERCHANT
                and not service.is_team_member(case.store, author)):
            service.hold(s, case, party=thread.party, author_address=author,
                         author_name=name, content=content,
                         reason=f"{author or 'no sender'} is not on the "
                                f"store's team")
            return "held", replies.HELD, case.id
        if content.empty:
            service.record_empty(s, case, party=thread.party,
                                 author_address=author, author_name=name,
                                 content=content)
            return "empty", replies.EMPTY, case.id
        service.add_message(s, case, party=thread.party, author_address=author,
                            author_name=name, content=content)
        return "filed", replies.ACCEPTED, case.id

    # -- when applying fails ------------------------------------------------

    def _after_conflict(self, raw: bytes, env: Envelope, key: str,
                        reading: Reading | None, exc: IntegrityError,
                        unit: Unit, in_batch: bool) -> Outcome:
        """A constraint stopped the transaction. The usual cause: another
        instance kept the same delivery a moment before us (the unique
        key waited for its commit). Anything else is a fault of ours."""
        try:
            with unit() as s:
                found = rawstore.exists(s, key)
        except DBAPIError as again:
            if database_away(again):
                raise _BatchLost(again) from again
            return failed_outcome(again)
        if found:
            log.info("%s filed meanwhile by another instance",
                     mail_id(reading))
            return Outcome("duplicate", replies.DUPLICATE)
        return self._quarantine(raw, env, key, reading, exc, unit, in_batch)

    def _quarantine(self, raw: bytes, env: Envelope, key: str,
                    reading: Reading | None, exc: Exception,
                    unit: Unit | None = None,
                    in_batch: bool = False) -> Outcome:
        error = "".join(traceback.format_exception_only(exc)).strip()
        log.error("%s quarantined: %s", mail_id(reading), error,
                  exc_info=exc)
        try:
            with (unit or self._own_transaction)() as s:
                row = rawstore.find(s, key, lock=True)
                row = row or rawstore.keep(s, raw, env, key,
                                           self.rt.clock.now())
                rawstore.mark_quarantined(row, error)
        except Exception as again:  # cannot even keep it: the sender must
            if in_batch and isinstance(again, DBAPIError) \
                    and database_away(again):
                raise _BatchLost(again) from again
            return failed_outcome(again)
        if row.attempts >= self.rt.settings.max_processing_attempts:
            log.warning("%s failed %s times: left for a person (raw mail "
                        "%s)", mail_id(reading), row.attempts, row.id)
        return Outcome("quarantined", replies.QUARANTINED, row.case_id,
                       row.id)

    # -- applying again -----------------------------------------------------

    def reprocess(self, raw_mail_id: int, *, by_person: bool = True
                  ) -> Outcome:
        """Apply a quarantined mail again, once its fault is fixed.

        The recipient is routed as at RCPT time; a route that no longer
        holds (a case gone, a retired signing key) keeps the mail in
        quarantine with that error instead of dropping it.
        """
        with self.rt.sessions() as s:
            row = s.get(m.RawMail, raw_mail_id)
            if row is None:
                raise UnknownCase(f"no raw mail {raw_mail_id}")
            raw = rawstore.data_of(row, self.rt.settings.files_dir)
            env = rawstore.envelope_of(row)
        key = idempotency_key(raw, env.recipient)
        try:
            route = self.route(env.recipient)
        except (AddressError, UnknownCase) as exc:
            return self._quarantine(raw, env, key, None, exc)
        outcome = self.process(raw, env, route, by_person=by_person)
        if outcome.status == "refused":
            # Accepted once, so never dropped now: it stays for a person.
            return self._quarantine(raw, env, key, None,
                                    MailRefused(outcome.reply))
        return outcome

    def retry_quarantined(self) -> list[Outcome]:
        """One automatic pass over the quarantine, below the limit."""
        limit = self.rt.settings.max_processing_attempts
        with self.rt.sessions() as s:
            ids = [r.id for r in rawstore.quarantined(s, retryable_below=limit)]
        return [self.reprocess(i, by_person=False) for i in ids]

    def route(self, recipient: str) -> Route:
        """Where mail for ``recipient`` goes (``Router.route``)."""
        return self.router.route(recipient)

    def known_route(self, recipient: str) -> Route | None:
        """The route when no database is needed (``Router.known_route``)."""
        return self.router.known_route(recipient)




# Where one mail's work happens: a transaction of its own, or a
# savepoint in a batch's transaction.
Unit = Callable[[], AbstractContextManager[Session]]


class _NotAtOnce(Exception):
    """A mail of the batch needs a savepoint of its own; nothing was kept."""


class _BatchLost(Exception):
    """The database failed under a mail: nothing of its transaction holds."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@contextmanager
def _savepoint(sessions: sessionmaker[Session],
               conn: Connection) -> Iterator[Session]:
    """A session of its own for one mail of a batch, on the batch's
    connection, inside a savepoint. Its own identity map: what a mail
    rolled back leaves no objects behind for the next one to trip on."""
    with sessions(bind=conn, join_transaction_mode="create_savepoint") \
            as session, session.begin():
        yield session
