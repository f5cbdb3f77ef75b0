"""format=flowed bodies built to make joining slow."""

from __future__ import annotations

from hostile_mail import BUDGET_SECONDS, assert_read_whole, mail, timed_read

from casemail.mime.text import unflow

FLOWED = b"Content-Type: text/plain; charset=utf-8; format=flowed\r\n"


def test_one_endless_flowed_paragraph_is_joined_in_time() -> None:
    """Each soft line used to be added to one growing string: a
    two-megabyte paragraph took seconds, a bigger one minutes."""
    raw = mail(b"my key does not work \r\n" * 100_000 + b"end\r\n", FLOWED)
    result, seconds = timed_read(raw)
    assert_read_whole(result)
    assert result.full_text.startswith("my key does not work my key")
    assert result.full_text.endswith("end")
    assert "\n" not in result.full_text
    assert seconds < BUDGET_SECONDS


def test_an_empty_line_ends_a_flowed_paragraph() -> None:
    """RFC 3676 section 4.2: the empty line is fixed and ends the
    paragraph; the next one is not glued to it."""
    assert unflow("Hello \n\nWorld", delsp=False) == "Hello \nWorld"
    assert unflow("> a \n> b\nc", delsp=False) == "> a b\nc"
