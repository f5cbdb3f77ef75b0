"""Quote detection on bodies built to make it slow or to exhaust it."""

from __future__ import annotations

from hostile_mail import BUDGET_SECONDS, assert_read_whole, mail, timed_read


def test_thousands_of_signature_lines_are_read_not_given_up() -> None:
    """Each "--" opened a quoted block and the next was read recursively:
    a body of them ran out of stack and the whole mail became unreadable.
    """
    raw = mail(b"--\r\n\r\n" * 50_000
               + b"Still no key, please help.\r\n")
    result, seconds = timed_read(raw)
    assert_read_whole(result)
    assert "Still no key, please help." in result.full_text
    assert seconds < BUDGET_SECONDS


def test_a_bottom_posted_reply_below_many_blocks_is_found() -> None:
    """Blocks peeled off the top one after another still leave the words
    written at the bottom as the new text."""
    block = b"On Mon, 1 Jan 2024, Shop <shop@example.org> wrote:\r\n> x\r\n\r\n"
    raw = mail(block * 3 + b"My key still does not work.\r\n")
    result, _ = timed_read(raw)
    assert result.new_text == "My key still does not work."
    assert result.removed_text.count("wrote:") == 3


def test_a_hundred_thousand_short_lines_are_read_in_time() -> None:
    """Every line costs a dozen patterns; the scan is bounded."""
    raw = mail(b"hello\r\n" + b"From: x\r\n> q\r\nx\r\n" * 100_000)
    result, seconds = timed_read(raw)
    assert_read_whole(result)
    assert result.new_text.startswith("hello")
    assert seconds < BUDGET_SECONDS
