"""Trees built to be wide or deep."""

from __future__ import annotations

from hostile_mail import BUDGET_SECONDS, assert_read_whole, mail, timed_read

MIXED = b"Content-Type: multipart/mixed; boundary=B\r\n"


def test_ten_thousand_attachments_are_not_each_sniffed() -> None:
    """Every file costs a libmagic call and a parse: ten thousand held the
    reader for seventeen seconds. The rest past 500 parts is left in the
    raw mail, and a defect says so."""
    body = b"--B\r\nContent-Type: text/plain\r\n\r\nMy key, see files.\r\n"
    body += b"".join(
        b"--B\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename=f%d.bin\r\n\r\n"
        b"data %d\r\n" % (n, n) for n in range(10_000))
    result, seconds = timed_read(mail(body + b"--B--\r\n", MIXED))
    assert_read_whole(result)
    assert result.new_text == "My key, see files."
    assert len(result.attachments) < 500
    assert "more than 500 parts: the rest of the mail is not read" \
        in result.defects
    assert seconds < BUDGET_SECONDS


def test_many_html_alternatives_are_read_in_time() -> None:
    body = b"".join(
        b"--B\r\nContent-Type: text/html\r\n\r\n<p>part %d</p>\r\n" % n
        for n in range(10_000))
    result, seconds = timed_read(mail(
        body + b"--B--\r\n",
        b"Content-Type: multipart/alternative; boundary=B\r\n"))
    assert_read_whole(result)
    assert seconds < BUDGET_SECONDS
