"""A binary file that also holds a web page or a script is refused
(``filetypes.hides_markup``): the tag or the ``javascript:`` URL is
looked for in the first and the last 64 KB, in any letter case."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from casemail.mime.filetypes import SNIFF_BYTES, hides_markup

# The rule in its plainest form, to hold the quick version to.
_RULE = re.compile(rb"<(html|script|svg|iframe)[\s/>]|javascript\s*:", re.I)


def _by_rule(data: bytes) -> bool:
    head = data[:SNIFF_BYTES]
    tail = data[max(SNIFF_BYTES, len(data) - SNIFF_BYTES):]
    return bool(_RULE.search(head) or _RULE.search(tail))


_PIECES = st.sampled_from([
    b"<html>", b"<HTML ", b"<Script/", b"<svg\t", b"<sVg", b"<iframe\n",
    b"<iframes", b"<htm>", b"JavaScript:", b"javascript \x0b:",
    b"javascript\x1c:", b"JAVASCRIPT", b"<", b":", b"\x00\xff", b"<\xc3svg ",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.binary(max_size=12)), max_size=30))
def test_the_quick_scan_finds_what_the_rule_finds(pieces):
    data = b"".join(pieces)
    assert hides_markup(data) == _by_rule(data)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([b"<SVG/", b"<Html>", b"JavaScript :"]),
       st.sampled_from(["head", "middle", "tail"]))
def test_only_the_two_samples_are_read(marker, where):
    filler = bytes(range(256)).replace(b"<", b"(") * 800  # ~200 KB
    at = {"head": 100, "middle": len(filler) // 2,
          "tail": len(filler) - 100}[where]
    data = filler[:at] + marker + filler[at:]
    assert hides_markup(data) is (where != "middle")
