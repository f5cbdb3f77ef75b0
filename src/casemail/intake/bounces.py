"""Mail about one of our own mails: a delivery report, or what arrives
at a bounce address.

A report is matched to the outbox row it is about by the bounce address
it came to (VERP: the address names the row, signed) or by the
Message-ID it returns. It marks that mail (a permanent failure to the
customer stops all mail to them) and goes on the case's timeline. Mail
at a bounce address that is no report at all — an auto-responder
answering the Return-Path, as RFC 3834 4 tells it to — says nothing
about delivery: it is recorded on the case and changes nothing.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.addresses import Party
from casemail.cases.content import Content
from casemail.cases.threading import Route
from casemail.classify import BOUNCE, FEEDBACK_REPORT, Verdict
from casemail.db import models as m
from casemail.intake import replies
from casemail.mime.model import ReadMail
from casemail.runtime import Runtime

log = logging.getLogger(__name__)

# What applying a mail gives: its status, the reply, the case it touched.
Applied = tuple[str, str, int | None]

# Kinds of mail that speak of a mail's delivery even when no report was
# read out of them: a bounce, and a recipient's complaint (which, like a
# permanent bounce, stops the mail to that address).
_ABOUT_DELIVERY = frozenset({BOUNCE, FEEDBACK_REPORT})


def apply(rt: Runtime, s: Session, route: Route, mail: ReadMail,
          verdict: Verdict, content: Content) -> Applied | None:
    """A delivery report about one of our mails, found by VERP or by the
    returned Message-ID; None when it names none of ours."""
    report = verdict.bounce
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
    if report is None and verdict.kind not in _ABOUT_DELIVERY:
        # At the bounce address, yet no report of any kind: an
        # auto-responder, or a person's slip. The mail stays as it was.
        return _at_bounce_address(rt, s, outbox, mail, verdict, content)
    content.kind = "bounce" if content.kind == "human" else content.kind
    rt.service.record_bounce(
        s, outbox, status=(report.status or "") if report else "",
        diagnostic=(report.diagnostic or "") if report else "",
        permanent=report.permanent if report else True, content=content)
    return "ignored", replies.RECORDED, outbox.case_id


def _at_bounce_address(rt: Runtime, s: Session, outbox: m.Outbox,
                       mail: ReadMail, verdict: Verdict,
                       content: Content) -> Applied:
    if outbox.case_id is None:
        return "ignored", replies.RECORDED, None
    case = rt.service.lock_case(s, outbox.case_id)
    sender = mail.sender
    rt.service.record_automated(s, case, party=Party(outbox.party),
                                author_address=sender.address if sender
                                else "", content=content)
    log.info("%s at the bounce address of outbox %s, no report: recorded "
             "(%s)", mail.message_id, outbox.id, verdict.kind)
    return "ignored", replies.RECORDED, case.id
