"""Reports that need more than one header: successes, SES, broken mail."""

from __future__ import annotations

from collections.abc import Callable

from casemail.classify import KINDS, RULES, Verdict, classify
from casemail.classify.measure import load

VerdictOf = Callable[..., Verdict]


def test_a_success_report_is_automated_but_no_bounce(
        verdict_of: VerdictOf) -> None:
    """RFC 3464 also reports deliveries; nothing failed, nothing to mark."""
    verdict = verdict_of("dsn-delivered.eml")
    assert verdict.kind == "auto-reply"
    assert verdict.bounce is None
    assert "dsn-report" not in verdict.rules
    assert "mailer-daemon-sender" in verdict.rules


def test_an_amazon_ses_bounce_notification(verdict_of: VerdictOf) -> None:
    verdict = verdict_of("ses-bounce.eml")
    assert verdict.kind == "bounce"
    assert verdict.rules == ["amazon-ses-bounce", "amazon-ses-notification"]
    bounce = verdict.bounce
    assert bounce is not None
    assert (bounce.recipient, bounce.status, bounce.permanent) == (
        "olu.adeyemi@gone.example", "5.1.1", True)
    assert bounce.our_envelope == (
        "bounce+2x.1abcdefghijklmnop@reply.example.test")
    assert bounce.original_message_id == (
        "<9l.c.a7b8c9d0e1f2.1abcdefghijklmnop@reply.example.test>")


def test_the_null_envelope_with_a_report_is_a_bounce(
        verdict_of: VerdictOf) -> None:
    verdict = verdict_of("dsn-delayed.eml", envelope_from="")
    assert verdict.kind == "bounce"
    assert "null-reverse-path" in verdict.rules


def test_broken_mail_gets_a_verdict() -> None:
    """Malformed mail is data: the classifier answers, never raises."""
    for raw in (b"", b"\x00\xff\xfe garbage", b"Content-Type: multipart/"
                b"report; report-type=delivery-status\n\n--x\n",
                b"From: MAILER-DAEMON\nContent-Type: message/delivery-status"
                b"\nContent-Transfer-Encoding: base64\n\n!!!not base64"):
        verdict = classify(load(raw))
        assert verdict.kind in KINDS


def test_rules_have_unique_names_and_known_kinds() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    assert all(rule.decides in KINDS | {None} for rule in RULES)
    assert all(rule.looks_at for rule in RULES)
