"""The shared corpus of other projects' mail: no crash, and how well we trim.

Skipped when the corpus is not beside the repository.
"""

from __future__ import annotations

import pytest

from casemail.mime import measure

CORPUS = measure.default_corpus()
pytestmark = pytest.mark.skipif(not (CORPUS / "files.tsv").exists(),
                                reason="no shared corpus beside the repo")


def test_every_raw_mail_is_read_without_a_crash():
    result = measure.measure_raw(CORPUS)
    assert result["mails"] > 400
    assert result["crashes"] == []


def test_discourse_reply_text_match_rate_stays_at_least_90_percent():
    result = measure.measure_discourse(CORPUS)
    print(f"discourse trimmed: {result['matched']}/{result['total']}")
    assert result["matched"] / result["total"] >= 0.9


def test_talon_standard_replies_give_hello_where_no_signature_is_kept():
    result = measure.measure_talon(CORPUS)
    print(f"talon: {result['matched']}/{result['total']}")
    # The two misses keep a phone/Sparrow signature that we remove.
    assert set(result["misses"]) <= {"iphone.eml", "sparrow.eml"}
