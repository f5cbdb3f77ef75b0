"""HTML bodies built to make turning them into text slow."""

from __future__ import annotations

from hostile_mail import BUDGET_SECONDS, assert_read_whole, mail, timed_read

from casemail.mime.text import html_to_text

HTML = b"Content-Type: text/html; charset=utf-8\r\n"


def test_an_html_mail_of_many_small_tags_is_read_in_time() -> None:
    """A five-megabyte page of paragraphs took forty seconds: the layout
    engine costs some 25 microseconds a tag and ran three times."""
    raw = mail(b"<p>my key is missing</p>" * 200_000, HTML)
    result, seconds = timed_read(raw)
    assert_read_whole(result)
    assert result.new_text.startswith("my key is missing\n")
    assert seconds < BUDGET_SECONDS


def test_many_quote_markers_do_not_slow_the_split() -> None:
    """Each quote marker was looked up by XPath over every element."""
    raw = mail(b"<div class=gmail_quote>old</div><p>new</p>" * 20_000, HTML)
    result, seconds = timed_read(raw)
    assert_read_whole(result)
    assert seconds < BUDGET_SECONDS


def test_large_html_still_drops_scripts_and_keeps_blocks_apart() -> None:
    """The linear conversion for large pages reads like the other."""
    page = ("<html><head><title>t</title><style>p {}</style></head><body>"
            + "<p>one &amp; two</p><script>alert(1)</script>" * 6_000
            + "<div>last<br>line</div></body></html>")
    text = html_to_text(page)
    assert "alert" not in text and "p {}" not in text
    assert text.startswith("one & two\n")
    assert text.endswith("last\nline")
