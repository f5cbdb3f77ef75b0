"""Raw bytes → kept → read → classified → threaded → applied.

One call per envelope recipient, run in a worker thread (never on the event
loop). Every mail ends in a named outcome:

    filed        a person's message moved its case
    held         stored and visible, but changed nothing (unknown merchant
                 sender)
    ignored      automated mail (auto-reply, bounce, list, loop): recorded
                 on the timeline, moved nothing
    duplicate    the same bytes for the same recipient were filed before
    quarantined  accepted, but applying it failed; kept with the error for
                 ``casemail reprocess``
    refused      belongs to no case; answered 550, nothing kept

The raw mail, the message and the case change commit in one transaction,
and the listener answers ``250`` only after that commit.
"""

from __future__ import annotations

import hashlib
import logging
import traceback
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from casemail.addresses import Party
from casemail.cases.content import Content
from casemail.cases.threading import Route, find_thread
from casemail.classify import Verdict, classify
from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.errors import MailRefused
from casemail.intake import replies
from casemail.mime.model import ReadMail
from casemail.mime.reader import read_mail
from casemail.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Envelope:
    mail_from: str  # "" for the null reverse-path
    recipient: str
    peer: str = ""


@dataclass(frozen=True)
class Outcome:
    status: str
    reply: str
    case_id: int | None = None
    raw_mail_id: int | None = None


@dataclass
class Reading:
    """One mail read and classified once, shared by all its recipients."""

    mail: ReadMail
    verdict: Verdict


def idempotency_key(raw: bytes, recipient: str) -> str:
    # Per recipient: one mail to two cases is two deliveries, and the
    # Message-ID is no key (shared across recipients, or missing).
    digest = hashlib.sha256(raw)
    digest.update(b"\0" + recipient.strip().lower().encode())
    return digest.hexdigest()


class Pipeline:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def read(self, raw: bytes, mail_from: str | None) -> Reading:
        s = self.rt.settings
        mail = read_mail(raw, max_attachment_size=s.max_attachment_size,
                         max_attachments_total=s.max_attachments_total)
        verdict = classify(mail, envelope_from=mail_from,
                           own_domain=s.reply_domain)
        return Reading(mail, verdict)

    def process(self, raw: bytes, envelope: Envelope, route: Route,
                reading: Reading | None = None) -> Outcome:
        """File one mail for one recipient; never raises."""
        key = idempotency_key(raw, envelope.recipient)
        try:
            reading = reading or self.read(raw, envelope.mail_from)
            return self._file(raw, envelope, route, reading, key)
        except MailRefused as exc:
            return Outcome("refused", replies.for_error(exc, where="DATA"))
        except IntegrityError:
            # Another instance filed the same delivery a moment ago.
            return Outcome("duplicate", replies.DUPLICATE)
        except DBAPIError as exc:
            return Outcome("failed", replies.for_error(exc, where="DATA"))
        except Exception as exc:  # a fault of ours: keep the mail, say so
            return self._quarantine(raw, envelope, key, exc)

    # -- the one transaction ----------------------------------------------

    def _file(self, raw: bytes, env: Envelope, route: Route, reading: Reading,
              key: str) -> Outcome:
        mail_id = reading.mail.message_id
        with transaction(self.rt.sessions) as s:
            earlier = s.scalars(
                select(m.RawMail).where(m.RawMail.idem_key == key)).first()
            if earlier is not None and earlier.status != "quarantined":
                log.info("%s duplicate of raw mail %s", mail_id, earlier.id)
                return Outcome("duplicate", replies.DUPLICATE,
                               earlier.case_id, earlier.id)
            row = earlier or self._keep_raw(s, raw, env, key)
            status, reply, case_id = self._apply(s, row, route, reading)
            row.status, row.outcome, row.case_id = status, reply[4:], case_id
            row.error = ""
        log.info("%s case %s: %s (%s)", mail_id, case_id, status,
                 ",".join(reading.verdict.rules) or "human")
        return Outcome(status, reply, case_id, row.id)

    def _keep_raw(self, s: Session, raw: bytes, env: Envelope,
                  key: str) -> m.RawMail:
        row = m.RawMail(
            idem_key=key, sha256=hashlib.sha256(raw).hexdigest(),
            envelope_from=env.mail_from[:320], envelope_to=env.recipient[:320],
            peer=env.peer[:100], received_at=self.rt.clock.now(),
            size=len(raw), data=raw, status="received")
        s.add(row)
        s.flush()
        return row

    def _apply(self, s: Session, row: m.RawMail, route: Route,
               reading: Reading) -> tuple[str, str, int | None]:
        mail, verdict = reading.mail, reading.verdict
        content = Content.from_mail(mail, kind=verdict.kind,
                                    rules=verdict.rules, raw_mail_id=row.id)
        if route.kind == "bounce" or verdict.bounce is not None:
            handled = self._apply_bounce(s, route, reading, content)
            if handled is not None:
                return handled
        thread = find_thread(self.rt.signer, route, mail)
        if thread is None:
            raise MailRefused(replies.NO_THREAD[10:], code=550, status="5.1.1")

        service = self.rt.service
        case = service.lock_case(s, thread.case_id)
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
        service.add_message(s, case, party=thread.party, author_address=author,
                            author_name=name, content=content)
        return "filed", replies.ACCEPTED, case.id

    def _apply_bounce(self, s: Session, route: Route, reading: Reading,
                      content: Content) -> tuple[str, str, int | None] | None:
        """A delivery report about one of our mails, found by VERP or by
        the returned Message-ID; None when it names none of ours."""
        report = reading.verdict.bounce
        outbox = None
        if route.kind == "bounce" and route.outbox_id is not None:
            outbox = s.get(m.Outbox, route.outbox_id)
        if outbox is None and report is not None and report.original_message_id:
            outbox = s.scalars(select(m.Outbox).where(
                m.Outbox.message_id == report.original_message_id)).first()
        if outbox is None:
            if route.kind == "bounce":
                # Signed by us, yet unknown: nothing to attach it to.
                return "ignored", replies.RECORDED, None
            return None
        content.kind = "bounce" if content.kind == "human" else content.kind
        self.rt.service.record_bounce(
            s, outbox, status=(report.status or "") if report else "",
            diagnostic=(report.diagnostic or "") if report else "",
            permanent=report.permanent if report else True, content=content)
        return "ignored", replies.RECORDED, outbox.case_id

    # -- when applying fails ------------------------------------------------

    def _quarantine(self, raw: bytes, env: Envelope, key: str,
                    exc: Exception) -> Outcome:
        error = "".join(traceback.format_exception_only(exc)).strip()
        log.error("mail for %s quarantined: %s", env.recipient, error,
                  exc_info=exc)
        try:
            with transaction(self.rt.sessions) as s:
                row = s.scalars(select(m.RawMail).where(
                    m.RawMail.idem_key == key)).first()
                row = row or self._keep_raw(s, raw, env, key)
                row.status = "quarantined"
                row.error = error[:4000]
                row.attempts += 1
            return Outcome("quarantined", replies.QUARANTINED,
                           raw_mail_id=row.id)
        except Exception as again:  # cannot even keep it: the sender must
            return Outcome("failed", replies.for_error(again, where="DATA"))

    def reprocess(self, raw_mail_id: int, route_for: object) -> Outcome:
        """Apply a quarantined mail again, once its fault is fixed.

        ``route_for`` maps an envelope recipient to its ``Route`` (the
        listener's RCPT check), so a reprocessed mail is routed exactly
        like a fresh one.
        """
        with transaction(self.rt.sessions) as s:
            row = s.get(m.RawMail, raw_mail_id)
            if row is None:
                raise MailRefused(f"no raw mail {raw_mail_id}")
            raw, env = row.data, Envelope(row.envelope_from, row.envelope_to,
                                          row.peer)
        route = route_for(env.recipient)  # type: ignore[operator]
        return self.process(raw, env, route)
