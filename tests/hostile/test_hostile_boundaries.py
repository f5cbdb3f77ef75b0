"""Multiparts whose boundary is lost, and trees nested beyond the parser."""

from __future__ import annotations

from hostile_mail import assert_read_whole, fixture, mail, timed_read

from casemail.classify import classify


def test_a_boundary_lost_to_a_folded_header_is_read_from_the_body() -> None:
    """The customer's words and file used to become one 'attachment.txt'
    holding the raw MIME, and the new text was empty."""
    result, _ = timed_read(fixture("folded-boundary.eml"))
    assert result.new_text.startswith("Hello, the licence key for order")
    assert [a.filename for a in result.attachments] == ["receipt.png"]
    assert result.attachments[0].kept
    assert "multipart boundary read from its body" in result.defects


def test_a_multipart_without_any_boundary_is_read_as_text() -> None:
    result, _ = timed_read(fixture("multipart-without-boundary.eml"))
    assert result.new_text == \
        "Hello, the licence key for order 1042 never arrived."
    assert result.attachments == []
    assert "multipart without a boundary" in result.defects


def test_text_that_merely_starts_with_dashes_is_not_split() -> None:
    """A guessed boundary must come back later in the body."""
    raw = mail(b"--\r\nJane\r\n",
               b"Content-Type: multipart/mixed\r\n")
    result, _ = timed_read(raw)
    assert "multipart boundary read from its body" not in result.defects
    assert "Jane" in result.full_text


def test_a_thousand_nested_multiparts_keep_the_headers() -> None:
    """The stdlib parser recurses per level and ran out of stack: the
    mail came back 'could not be read' without sender or subject."""
    nest = b"".join(b"--B%d\r\nContent-Type: multipart/mixed; "
                    b"boundary=B%d\r\n\r\n" % (n, n + 1) for n in range(1000))
    raw = mail(nest, b"Content-Type: multipart/mixed; boundary=B0\r\n")
    result, _ = timed_read(raw)
    assert_read_whole(result)
    assert result.sender is not None
    assert result.sender.address == "jane@customer.example"
    assert result.message_id == "<hostile-1@customer.example>"
    assert "parts nested too deep to read: the body is not read" \
        in result.defects
    assert classify(result, own_domain="reply.example.test").kind == "human"


def test_a_thousand_nested_forwards_keep_the_headers() -> None:
    raw = mail(b"hi\r\n", b"Content-Type: message/rfc822\r\n\r\n" * 1000)
    result, _ = timed_read(raw)
    assert_read_whole(result)
    assert result.subject == "My licence key"
