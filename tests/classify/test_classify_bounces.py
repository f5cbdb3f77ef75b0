"""What a bounce of our mail says: status, diagnostic, whom, which mail."""

from __future__ import annotations

from collections.abc import Callable

from casemail.classify import Verdict

VerdictOf = Callable[..., Verdict]


def test_an_rfc3464_report(verdict_of: VerdictOf) -> None:
    bounce = verdict_of("dsn-user-unknown.eml").bounce
    assert bounce is not None
    assert bounce.recipient == "ines.marlow@customer-isp.example"
    assert bounce.status == "5.1.1"
    assert bounce.permanent and bounce.action == "failed"
    assert "no such mailbox" in bounce.diagnostic
    assert bounce.diagnostic.startswith("550 5.1.1")
    assert bounce.original_message_id == (
        "<6f.c.a1b2c3d4e5f6.1abcdefghijklmnop@reply.example.test>")
    assert bounce.our_envelope == (
        "bounce+2s.1abcdefghijklmnop@reply.example.test")
    assert bounce.reporting_mta == "mx.customer-isp.example"
    assert bounce.source == "rfc3464"


def test_a_delay_is_not_permanent(verdict_of: VerdictOf) -> None:
    bounce = verdict_of("dsn-delayed.eml").bounce
    assert bounce is not None
    assert (bounce.action, bounce.status, bounce.permanent) == (
        "delayed", "4.4.1", False)
    assert bounce.recipient == "paulo.reis@slow-host.example"
    assert bounce.original_message_id == (
        "<7g.c.b2c3d4e5f6a7.1abcdefghijklmnop@reply.example.test>")


def test_a_qmail_text_report(verdict_of: VerdictOf) -> None:
    bounce = verdict_of("qmail-text.eml").bounce
    assert bounce is not None
    assert bounce.recipient == "hal.ferreira@old-host.example"
    assert bounce.status == "5.1.1"
    assert bounce.permanent
    assert "no mailbox" in bounce.diagnostic
    assert bounce.original_message_id == (
        "<8h.c.c3d4e5f6a7b8.1abcdefghijklmnop@reply.example.test>")
    assert bounce.source == "text"


def test_an_exim_report_names_the_failed_recipient(
        verdict_of: VerdictOf) -> None:
    bounce = verdict_of("exim-failed-recipients.eml").bounce
    assert bounce is not None
    assert bounce.recipients == ["rosa.kimura@hosting.example"]
    assert bounce.status == "5.2.1"
    assert "mailbox disabled" in bounce.diagnostic
    assert bounce.original_message_id == (
        "<9i.c.d4e5f6a7b8c9.1abcdefghijklmnop@reply.example.test>")


def test_a_feedback_report_carries_no_bounce(verdict_of: VerdictOf) -> None:
    verdict = verdict_of("arf-abuse.eml")
    assert verdict.kind == "feedback-report"
    assert verdict.bounce is None
