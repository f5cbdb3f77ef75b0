"""Each of our fixture mails gets the kind a support desk would expect."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from casemail.classify import Verdict

VerdictOf = Callable[..., Verdict]


@pytest.mark.parametrize(("name", "kind", "rule"), [
    ("human-reply.eml", "human", None),
    ("outlook-suppress.eml", "human", "x-auto-response-suppress"),
    ("vacation-de.eml", "auto-reply", "out-of-office-subject"),
    ("vacation-rfc3834.eml", "auto-reply", "auto-submitted"),
    ("list-digest.eml", "list", "list-id"),
    ("own-notification.eml", "loop", "own-marker"),
    ("dsn-user-unknown.eml", "bounce", "dsn-report"),
    ("dsn-delayed.eml", "bounce", "dsn-report"),
    ("qmail-text.eml", "bounce", "bounce-text"),
    ("exim-failed-recipients.eml", "bounce", "x-failed-recipients"),
    ("arf-abuse.eml", "feedback-report", "arf-report"),
    ("forwarded-bounce.eml", "human", None),
    ("mailbox-full-notice.eml", "auto-reply", "mailer-daemon-sender"),
])
def test_fixture_kind(name: str, kind: str, rule: str | None,
                      verdict_of: VerdictOf) -> None:
    verdict = verdict_of(name)
    assert verdict.kind == kind, verdict.rules
    if rule is None:
        assert verdict.rules == []
    else:
        assert rule in verdict.rules


def test_a_person_who_writes_is_human_with_no_rule(
        verdict_of: VerdictOf) -> None:
    """No rule fires on a plain reply, so nothing needs explaining."""
    verdict = verdict_of("human-reply.eml")
    assert (verdict.kind, verdict.rules, verdict.bounce) == ("human", [], None)
    assert not verdict.automated


def test_every_rule_that_fired_is_recorded_in_order(
        verdict_of: VerdictOf) -> None:
    """Exim's report fires the report rules and the header rules alike."""
    rules = verdict_of("exim-failed-recipients.eml").rules
    assert rules == ["x-failed-recipients", "bounce-subject", "bounce-text",
                     "auto-submitted", "mailer-daemon-sender"]


def test_a_forwarded_bounce_in_a_persons_mail_is_not_a_bounce(
        verdict_of: VerdictOf) -> None:
    """The failure wording only counts when a mail system sends it."""
    assert verdict_of("forwarded-bounce.eml").kind == "human"


def test_a_mail_system_notice_without_a_report_is_not_a_bounce(
        verdict_of: VerdictOf) -> None:
    """Without a report we can read, no delivery is marked as failed."""
    verdict = verdict_of("mailbox-full-notice.eml")
    assert verdict.kind == "auto-reply"
    assert verdict.bounce is None


def test_verdict_as_dict_is_what_inspect_prints(
        verdict_of: VerdictOf) -> None:
    data = verdict_of("dsn-user-unknown.eml").as_dict()
    assert data["kind"] == "bounce"
    assert isinstance(data["bounce"], dict)
    assert data["bounce"]["status"] == "5.1.1"
