"""New text versus removed history: what the author wrote this time.

Replies carry the earlier conversation below (or, rarely, above) the new
words, introduced by a line each client writes its own way and in the
writer's language; phones add "Sent from my …". We cut at the first such
marker and keep what was cut as ``removed``.
"""

from __future__ import annotations

import logging

from casemail.mime import quote_rules

log = logging.getLogger(__name__)


def split_reply(text: str) -> tuple[str, str]:
    """``(new, removed)`` for a reply body; ``new + removed`` loses no words.

    When the cut would leave nothing (a forward with no words of its own,
    or a marker we misread), the whole text is new.
    """
    text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    cut = quote_rules.first_marker(lines)
    if cut is None:
        return text.strip("\n").rstrip(), ""
    new = "\n".join(lines[:cut]).strip("\n").rstrip()
    removed = "\n".join(lines[cut:]).strip("\n")
    if not new.strip():
        return text.strip("\n").rstrip(), ""
    return new, removed
