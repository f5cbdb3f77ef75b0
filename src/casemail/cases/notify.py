"""Which mails a change to a case sends, and to whom.

Called by the case service inside its transaction; everything goes into
the outbox (``outbound.outbox``), nothing is sent from here. A mail the
budget or a bounced address stops is still written to the outbox as
``suppressed`` and recorded on the timeline, never silently dropped.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from casemail.addresses import Party, Signer
from casemail.cases import timeline
from casemail.clock import Clock
from casemail.config import Settings
from casemail.db import models as m
from casemail.mime.filestore import read_file
from casemail.mime.model import AttachmentPart
from casemail.outbound.compose import Composer
from casemail.outbound.outbox import queue_mail

log = logging.getLogger(__name__)


_AUTO_REPLY_SENT = select(m.Event.id).where(
    m.Event.case_id == bindparam("case_id"),
    m.Event.kind == "auto_reply_sent").limit(1)


class Notifier:
    def __init__(self, settings: Settings, signer: Signer, clock: Clock,
                 composer: Composer) -> None:
        self.settings = settings
        self.signer = signer
        self.clock = clock
        self.composer = composer

    # -- one method per kind of mail ---------------------------------------

    def to_merchant(self, s: Session, case: m.Case, template: str,
                    message: m.Message, **extra: object) -> None:
        for address, name in self._merchant_recipients(case):
            self._queue(s, case, template, address, name, Party.MERCHANT,
                        message=message, **extra)

    def merchant_reply(self, s: Session, case: m.Case,
                       message: m.Message) -> None:
        # A person's words relayed, not an automated mail: no budget, and
        # no Auto-Submitted header (RFC 3834 3.1.7 is about mail a program
        # wrote on its own).
        files = [(a.filename or a.safe_name, a.content_type,
                  read_file(self.settings.files_dir, a.sha256))
                 for a in message.attachments if a.kept and not a.inline]
        self._customer(s, case, "merchant_reply", message=message,
                       automated=False, auto_submitted="", attachments=files)

    def staff_message(self, s: Session, case: m.Case,
                      message: m.Message) -> None:
        self._customer(s, case, "staff_message", message=message,
                       automated=False, auto_submitted="")
        for address, name in self._merchant_recipients(case):
            self._queue(s, case, "staff_message", address, name,
                        Party.MERCHANT, message=message, automated=False,
                        auto_submitted="")

    def auto_reply(self, s: Session, case: m.Case) -> None:
        """The store's auto-reply, once per case (RFC 3834 5: auto-replied)."""
        # Asked of the database, not of ``case.events``: a list loaded
        # earlier in the transaction misses entries written since
        # (``db.rows`` writes them past the session).
        sent = s.connection().execute(_AUTO_REPLY_SENT,
                                      {"case_id": case.id}).first()
        if sent is not None:
            return
        row = self._customer(s, case, "auto_reply",
                             auto_submitted="auto-replied")
        if row is not None and row.status != "suppressed":
            timeline.record(s, self.clock, case, "auto_reply_sent",
                            Party.SYSTEM, outbox_id=row.id,
                            recipient=row.recipient)

    def closed(self, s: Session, case: m.Case, *, closed_by: Party) -> None:
        if closed_by is Party.CUSTOMER:
            for address, name in self._merchant_recipients(case):
                self._queue(s, case, "case_closed", address, name,
                            Party.MERCHANT, closed_by=closed_by.value)
            return
        self._customer(s, case, "case_closed", closed_by=closed_by.value)

    def reopened(self, s: Session, case: m.Case, *, reopened_by: Party) -> None:
        if reopened_by is Party.CUSTOMER:
            for address, name in self._merchant_recipients(case):
                self._queue(s, case, "case_reopened", address, name,
                            Party.MERCHANT, reopened_by=reopened_by.value)
            return
        self._customer(s, case, "case_reopened", reopened_by=reopened_by.value)

    def close_warning(self, s: Session, case: m.Case,
                      close_at: dt.datetime) -> None:
        row = self._customer(s, case, "close_warning", close_at=close_at)
        timeline.record(s, self.clock, case, "warning_sent", Party.SYSTEM,
                        outbox_id=row.id if row else None,
                        close_at=close_at.isoformat())

    def refused_notice(self, s: Session, case: m.Case, party: Party,
                       address: str, refused: list[AttachmentPart]) -> None:
        """One short notice to the person whose files we did not keep."""
        files = [{"filename": a.filename, "content_type": a.content_type,
                  "reason": a.reason} for a in refused]
        self._queue(s, case, "attachment_refused", address, "", party,
                    refused=files)

    # -- plumbing -----------------------------------------------------------

    def _merchant_recipients(self, case: m.Case) -> list[tuple[str, str]]:
        members = [(t.address, t.name) for t in case.store.members]
        return members or [(case.store.sender_address, case.store.name)]

    def _customer(self, s: Session, case: m.Case, template: str,
                  **kw: object) -> m.Outbox | None:
        return self._queue(s, case, template, case.customer_address,
                           case.customer_name, Party.CUSTOMER, **kw)

    def _queue(self, s: Session, case: m.Case, template: str, recipient: str,
               name: str, party: Party, *, message: m.Message | None = None,
               automated: bool = True, auto_submitted: str = "auto-generated",
               attachments: list[tuple[str, str, bytes]] | None = None,
               **extra: object) -> m.Outbox | None:
        if party not in (Party.CUSTOMER, Party.MERCHANT):
            return None
        context = {"case": case, "store": case.store, "message": message,
                   "platform_name": self.settings.platform_name, **extra}
        row = queue_mail(
            s, composer=self.composer, signer=self.signer, clock=self.clock,
            settings=self.settings, case=case, template=template,
            recipient=recipient, recipient_name=name, party=party,
            reply_to=self.signer.reply_address(case.id, party),
            context=context, automated=automated,
            auto_submitted=auto_submitted, attachments=attachments or ())
        if row.status == "suppressed":
            log.info("%s case %s: %s to %s suppressed: %s", row.message_id,
                     case.id, template, party.value, row.last_error)
            timeline.record(s, self.clock, case, "mail_suppressed",
                            Party.SYSTEM, outbox_id=row.id, template=template,
                            recipient=recipient, reason=row.last_error)
        return row
