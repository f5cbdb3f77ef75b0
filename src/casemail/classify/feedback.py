"""Abuse and unsubscribe feedback about mail we sent.

Mailbox providers tell senders when a recipient marked their mail as spam
(RFC 5965, the Abuse Reporting Format), and some use formats of their own.
These say nothing about a delivery; they are recorded, never filed as a
message from a person.
"""

from __future__ import annotations

from casemail.classify.providers import ses_type
from casemail.classify.rule import Inbound, Rule, register
from casemail.classify.verdict import FEEDBACK_REPORT

RULES: list[Rule] = []


@register(RULES, "arf-report",
          "multipart/report; report-type=feedback-report (RFC 5965)",
          FEEDBACK_REPORT)
def arf_report(mail: Inbound) -> bool:
    # RFC 5965 2: the report-type is feedback-report and the second part
    # message/feedback-report; either one is enough, as some providers
    # send the part under a multipart/mixed.
    message = mail.message
    if (mail.content_type == "multipart/report"
            and str(message.get_param("report-type", "")).lower()
            == "feedback-report"):
        return True
    return bool(mail.parts_of_type("message/feedback-report"))


@register(RULES, "hotmail-complaint",
          "Microsoft's complaint format (JMRP)", FEEDBACK_REPORT)
def hotmail_complaint(mail: Inbound) -> bool:
    # Microsoft's junk-mail reporting program returns the reported mail
    # with its own X-HmXmrOriginalRecipient header added, and no ARF part.
    for part in mail.attached_parts:
        payload = part.get_payload()
        if isinstance(payload, list) and payload and payload[0].get(
                "X-HmXmrOriginalRecipient"):
            return True
    return False


@register(RULES, "apple-unsubscribe",
          "X-Apple-Unsubscribe: true (Apple Mail's unsubscribe request)",
          FEEDBACK_REPORT)
def apple_unsubscribe(mail: Inbound) -> bool:
    return mail.header_lower("X-Apple-Unsubscribe") == "true"


@register(RULES, "amazon-ses-complaint",
          "an Amazon SES complaint notification sent through SNS",
          FEEDBACK_REPORT)
def amazon_ses_complaint(mail: Inbound) -> bool:
    return ses_type(mail) == "complaint"
