"""Bounces that do not follow RFC 3464.

qmail, old Sendmail, Exim, DMA, Yahoo, Japanese carriers and many filters
send their failure reports as plain text, each in its own wording.  These
rules only look at mail that already comes from a mail system (a
MAILER-DAEMON or postmaster sender, or the null reverse-path): a customer
forwarding us a bounce they got is a person writing, and the same words in
their mail must not make it a bounce.
"""

from __future__ import annotations

import json
import re

from casemail.classify.dsn import (
    field_value,
    is_permanent,
    original_message_id,
    reports_success_only,
    status_in,
)
from casemail.classify.rule import Inbound, Rule, domain_of, register
from casemail.classify.verdict import AUTO_REPLY, BOUNCE, BounceReport

RULES: list[Rule] = []

# Subjects mail servers give their failure and delay reports.
_SUBJECT = re.compile(
    r"^\s*(undeliver(ed|able)|un-?deliverable|non[- ]?deliver"
    r"|(mail|message) delivery (has )?failed|delivery (status|failure)"
    r"|delivery (has )?failed|mail delivery status|(permanent )?delivery"
    r" failure|failure (notice|delivery)|failed delivery|returned mail"
    r"|return(ed)? to sender|mail system error|delayed mail|delivery delay"
    r"|warning: message .* delayed|warning\W+could not send"
    r"|(mail|message) could not be delivered|could not deliver"
    r"|there was an error sending your mail|delivery notification"
    r"|unzustellbar|nicht zustellbar|non remis|non recapitabile"
    r"|onbestelbaar|no se puede entregar|impossible de remettre"
    r"|メッセージを配信できません|配信(エラー|不能)|送信エラー)",
    re.I)

# Openings that identify the mail software that wrote a report.
_ANCHORS = re.compile("|".join((
    r"this is the mail system at host",                      # Postfix
    r"i'm sorry to have to inform you that your message",    # Postfix
    r"this is the qmail-send program",                       # qmail
    r"this message was created automatically by mail delivery software",
    r"a message that you sent could not be delivered",       # Exim
    r"the following addresses had permanent fatal errors",   # Sendmail
    r"-----\s*transcript of session follows\s*-----",        # Sendmail
    r"delivery to the following recipients? (failed|has been delayed)",
    r"your message did not reach some or all of the intended recipients",
    r"delivery has failed to these recipients",              # Exchange
    r"your message (couldn't|could not|wasn't|was not) (be )?delivered",
    r"sorry, we were unable to deliver your message",        # Yahoo
    r"unable to deliver (the )?message to the following",
    r"could not be delivered to (one or more|the following)",
    r"an error (has )?occurred while attempting to deliver", # OpenSMTPD
    r"this is the mailer-daemon, please do not reply",
    r"the following message to .* was undeliverable",
    r"message delivery (to .* )?(has )?failed",
    r"(permanent|fatal) (delivery )?(error|failure)",
    r"the original message was received at",                 # Sendmail
    r"your mail (could not|can ?not) be delivered",
    r"has not yet been delivered",                           # delays
    r"returning message to sender",
    r"^transcript of session follows\.?$",                    # Postfix
    r"^error: .*\s+error message below:",                     # Verizon
)), re.I | re.M)

_DELAY = re.compile(
    r"delay|deferred|still being retried|will (continue|keep) trying"
    r"|could not send mail for past|not yet been delivered", re.I)
_ADDRESS = re.compile(r"[\w.+=!#$%&'*/?^`{|}~-]+@[\w-]+(\.[\w-]+)+")
# Where the report ends and the returned mail begins.
_RETURNED = re.compile(
    r"^.*(copy of (the|your) message|original message|returned message"
    r"|message (follows|headers follow)|below this line|unsent message"
    r"|undelivered message).*$|^(Return-Path|Received|Message-ID):",
    re.I | re.M)


def _from_mail_system(mail: Inbound) -> bool:
    # A DSN that reports only successful deliveries has the same subjects
    # and returned headers as a failure, and still reports no failure.
    return mail.from_mail_system and not reports_success_only(mail)


@register(RULES, "bounce-subject",
          "a mail system's failure-report subject", BOUNCE)
def bounce_subject(mail: Inbound) -> bool:
    return _from_mail_system(mail) and bool(_SUBJECT.match(mail.subject))


@register(RULES, "bounce-text",
          "a mail system's failure-report wording in the body", BOUNCE)
def bounce_text(mail: Inbound) -> bool:
    return _from_mail_system(mail) and bool(
        _ANCHORS.search(report_text(mail)))


@register(RULES, "returned-original",
          "a mail system returning a mail as message/rfc822", BOUNCE)
def returned_original(mail: Inbound) -> bool:
    # What a mail system sends back with a mail attached is a report on
    # it, whatever words (or language) it chose.
    return _from_mail_system(mail) and bool(mail.attached_parts)


@register(RULES, "amazon-ses-bounce",
          "an Amazon SES bounce notification sent through SNS", BOUNCE)
def amazon_ses_bounce(mail: Inbound) -> bool:
    return ses_type(mail) == "bounce"


@register(RULES, "amazon-ses-notification",
          "any Amazon SES event sent through SNS", AUTO_REPLY)
def amazon_ses_notification(mail: Inbound) -> bool:
    # Delivery and other events are machine mail too, but say nothing
    # failed: only the bounce rule above makes them a bounce.
    return bool(ses_type(mail))


def ses_type(mail: Inbound) -> str:
    """The SES event type of an SNS notification, "" for other mail."""
    if not domain_of(mail.from_address).endswith("sns.amazonaws.com"):
        return ""
    notice = ses_notice(mail)
    kind = notice.get("notificationType") or notice.get("eventType") or ""
    return str(kind).lower()


def ses_notice(mail: Inbound) -> dict[str, object]:
    """The SES event an SNS notification carries, or {}."""
    start, end = mail.text.find("{"), mail.text.rfind("}")
    if start < 0 or end < start:
        return {}
    notice = _json(mail.text[start:end + 1])
    if isinstance(notice.get("Message"), str):
        notice = _json(str(notice["Message"]))  # inside the SNS envelope
    return notice


def _json(text: str) -> dict[str, object]:
    # Sendmail breaks lines longer than its limit with "!" and a
    # continuation space, which leaves the JSON broken; undo that first.
    for candidate in (text, text.replace("!\n ", "").replace("!\r\n ", "")):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        return value if isinstance(value, dict) else {}
    return {}


# -- reading a plain-text report --------------------------------------------

def report_text(mail: Inbound) -> str:
    """The report's own words, before the returned mail starts."""
    text = mail.text
    cut = _RETURNED.search(text, 40)
    return text[:cut.start()] if cut else text


def read_text_bounce(mail: Inbound) -> BounceReport:
    """What a plain-text report says, as well as it can be read."""
    if ses_type(mail) == "bounce":
        return _read_ses(mail)
    head = report_text(mail)
    recipients = _failed_addresses(mail, head)
    diagnostic = _diagnostic(head, recipients)
    status = _failure_status(diagnostic) or _failure_status(head)
    delayed = bool(_DELAY.search(mail.subject)) or (
        not status and bool(_DELAY.search(head[:2000])))
    if delayed and status and status.startswith("5"):
        status = None  # a code quoted from an earlier attempt
    action = "delayed" if delayed else "failed"
    return BounceReport(
        recipient=recipients[0] if recipients else None,
        recipients=recipients,
        our_envelope=_address_in(str(mail.message.get("To", ""))),
        status=status,
        diagnostic=diagnostic,
        permanent=is_permanent(status, action) and not delayed,
        action=action,
        original_message_id=original_message_id(mail),
        source="text",
    )


def _failure_status(text: str) -> str | None:
    return status_in(text, failures_only=True)


# XXX: without X-Failed-Recipients the recipient is the first address in
# the report's words that is neither the sender's nor the report's own
# addressee; a report that names a help-desk contact before the failed
# address (one Japanese provider's Postfix does) gets the wrong one.
def _failed_addresses(mail: Inbound, head: str) -> list[str]:
    named = [field_value(a) for a in
             mail.header("X-Failed-Recipients").split(",") if a.strip()]
    if named:
        return [a.lower() for a in named]
    skip = {mail.from_address, (_address_in(mail.header("To")) or "")}
    found: list[str] = []
    for match in _ADDRESS.finditer(head):
        address = match.group(0).lower().rstrip(".")
        local = address.partition("@")[0]
        if address in skip or local in ("mailer-daemon", "postmaster"):
            continue
        if address not in found:
            found.append(address)
    return found[:10]


_NOT_DIAGNOSTIC = re.compile(r"^(date|received|arrival-date):", re.I)


def _diagnostic(head: str, recipients: list[str]) -> str:
    lines = [" ".join(line.split()) for line in head.splitlines()]
    lines = [line for line in lines if line]
    for line in lines:
        if _failure_status(line) and not _NOT_DIAGNOSTIC.match(line):
            return line[:300]
    for index, line in enumerate(lines):
        if recipients and recipients[0] in line.lower():
            rest = lines[index + 1:index + 2]
            return " ".join([line, *rest])[:300]
    return ""


def _address_in(text: str) -> str | None:
    found = _ADDRESS.search(text or "")
    return found.group(0).lower() if found else None


def _read_ses(mail: Inbound) -> BounceReport:
    bounce = ses_notice(mail).get("bounce")
    bounce = bounce if isinstance(bounce, dict) else {}
    people = [p for p in bounce.get("bouncedRecipients", [])
              if isinstance(p, dict)]
    first = people[0] if people else {}
    recipients = [str(p.get("emailAddress", "")).lower() for p in people]
    diagnostic = str(first.get("diagnosticCode", ""))
    status = (status_in(str(first.get("status", "")))
              or _failure_status(diagnostic))
    permanent = str(bounce.get("bounceType", "")).lower() == "permanent"
    mail_info = ses_notice(mail).get("mail")
    mail_info = mail_info if isinstance(mail_info, dict) else {}
    return BounceReport(
        recipient=recipients[0] if recipients else None,
        recipients=recipients,
        our_envelope=str(mail_info.get("source", "")).lower() or None,
        status=status,
        diagnostic=" ".join(diagnostic.split())[:300],
        permanent=permanent,
        action="failed" if permanent or status else "delayed",
        original_message_id=_ses_message_id(mail_info),
        source="amazon-ses",
    )


def _ses_message_id(mail_info: dict[str, object]) -> str | None:
    # SES's own "messageId" is its id, not ours; ours is among the headers.
    for header in mail_info.get("headers") or []:
        if (isinstance(header, dict)
                and str(header.get("name", "")).lower() == "message-id"):
            return str(header.get("value", "")).strip() or None
    return None
