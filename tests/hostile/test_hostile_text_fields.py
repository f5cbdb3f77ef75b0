"""Whatever bytes arrive, every text we read can be stored and shown."""

from __future__ import annotations

from collections.abc import Iterator

from hostile_mail import assert_read_whole, mail
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casemail.mime.model import ReadMail
from casemail.mime.reader import read_mail

HEADERS = [b"Subject: ", b"From: ", b"To: ", b"Cc: ", b"In-Reply-To: ",
           b"References: ", b"Message-ID: ",
           b"Content-Type: text/plain; charset=",
           b"Content-Type: multipart/mixed; charset=",
           b"Content-Disposition: attachment; filename=",
           b"Content-Transfer-Encoding: "]


def texts(result: ReadMail) -> Iterator[str]:
    yield from (result.message_id, result.subject, result.new_text,
                result.full_text, result.removed_text, result.html)
    boxes = result.to + result.cc + result.reply_to
    for box in boxes + ([result.sender] if result.sender else []):
        yield from (box.name, box.address)
    yield from result.in_reply_to + result.references + result.defects
    for item in result.attachments:
        yield from (item.filename, item.safe_name, item.reason)


def assert_storable(result: ReadMail) -> None:
    for text in texts(result):
        assert "\x00" not in text
        text.encode("utf-8")  # no lone surrogates either


def test_nul_bytes_are_kept_out_of_the_text() -> None:
    """PostgreSQL refuses NUL in text: a mail carrying one was refused
    at every retry. The raw mail keeps them."""
    raw = mail(b"my key\x00 is missing\r\n",
               b"Cc: Bob\x00 <bob@customer.example>\r\n")
    raw = raw.replace(b"Subject: My licence key",
                      b"Subject: =?utf-8?q?key=00?= missing")
    result = read_mail(raw)
    assert_storable(result)
    assert result.new_text == "my key is missing"
    assert result.subject == "key missing"
    assert "NUL characters removed from the text" in result.defects
    assert result.raw == raw


def test_a_charset_label_holding_nul_does_not_lose_the_mail() -> None:
    """The stdlib's get_payload() raised ValueError on it, and the whole
    mail, headers and all, came back unreadable."""
    raw = mail(b"caf\xe9 latt\xe9\r\n",
               b"Content-Type: text/plain; charset=ut\x00f8\r\n")
    result = read_mail(raw)
    assert_read_whole(result)
    assert result.new_text == "café latté"
    assert result.sender is not None


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(HEADERS), st.binary(max_size=30)),
                max_size=6),
       st.binary(max_size=60))
def test_any_header_bytes_give_storable_text(
        headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    raw = b"".join(name + value.replace(b"\n", b" ") + b"\n"
                   for name, value in headers) + b"\n" + body
    result = read_mail(raw)
    assert_read_whole(result)
    assert_storable(result)
