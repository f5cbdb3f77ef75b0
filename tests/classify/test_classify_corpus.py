"""The rates measured on the shared corpus of real bounces stay up."""

from __future__ import annotations

import pytest

from casemail.classify.measure import DEFAULT, measure


@pytest.mark.skipif(not (DEFAULT / "bsd").is_dir(),
                    reason="the shared bounce corpus is not on this machine")
def test_bounce_corpus_rates() -> None:
    """At least 98% of real reports get the right kind; none human, and
    nothing that is not a bounce is taken for one."""
    result = measure(DEFAULT)
    assert result.total > 250
    assert result.not_human == result.total, result.misses
    assert result.right_kind >= 0.98 * result.total, result.misses
    assert result.false_bounces == []
    assert result.with_recipient >= 0.95 * result.bounces
