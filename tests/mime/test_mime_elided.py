"""The stand-ins for long base64 runs are found in parsed text exactly
where the plain pattern (the mark, then digits) finds them."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from casemail.mime.parts import Elided

MARK = "casemailelided0123456789abcdefn"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(
    [MARK, "0", "17", "\u0663", "x", "\n", " ", "n", "casemailelided",
     MARK[:-1]]), max_size=14))
def test_stand_ins_split_as_the_pattern_splits(pieces):
    text = "".join(pieces)
    elided = Elided(MARK, b"", ())
    assert elided._split(text) == re.split(re.escape(MARK) + r"(\d+)",
                                           text)
