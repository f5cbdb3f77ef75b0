"""The rates measured on the shared corpus of real bounces stay up, and
the measure finds that corpus where the other measures do."""

from __future__ import annotations

from pathlib import Path

import pytest

from casemail.classify.measure import bounce_corpus, main, measure

BOUNCE = (b"From: MAILER-DAEMON@mx.example.net\nTo: case@reply.example.test\n"
          b"Subject: Undelivered Mail Returned to Sender\n"
          b"X-Failed-Recipients: lena@gmail.example\n\n"
          b"This is the mail system. Your mail could not be delivered.\n")


@pytest.mark.skipif(not (bounce_corpus() / "bsd").is_dir(),
                    reason="the shared bounce corpus is not on this machine")
def test_bounce_corpus_rates() -> None:
    """At least 98% of real reports get the right kind; none human, and
    nothing that is not a bounce is taken for one."""
    result = measure(bounce_corpus())
    assert result.total > 250
    assert result.not_human == result.total, result.misses
    assert result.right_kind >= 0.98 * result.total, result.misses
    assert result.false_bounces == []
    assert result.with_recipient >= 0.95 * result.bounces


def test_the_corpus_is_found_through_casemail_corpus(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """$CASEMAIL_CORPUS names the shared corpus, as for
    ``casemail.mime.measure``: the measure reads the bounces there."""
    bsd = tmp_path / "sisimai-set-of-emails" / "bsd"
    bsd.mkdir(parents=True)
    (bsd / "postfix-01.eml").write_bytes(BOUNCE)
    monkeypatch.setenv("CASEMAIL_CORPUS", str(tmp_path))
    assert bounce_corpus() == tmp_path / "sisimai-set-of-emails"
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("bsd/: 1 mails\n")
    assert "right kind:       1/1 (100.0%)" in out
