"""The bytes we send, read back by the email package as a client would.

Whatever the names, subject, text and files hold, the message is 7-bit,
has CRLF line ends and no line over 998 octets, adds no header of its
own accord, and gives back exactly what went in.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from casemail.outbound import wire
from casemail.outbound.compose import _mailbox

# Text as people type it: any letters, punctuation, line breaks of every
# kind, tabs and trailing blanks; no NUL (no mail part may carry one).
TEXT = st.text(st.characters(blacklist_categories=("Cs",),
                             blacklist_characters="\x00"), max_size=400)
NAME = st.text(st.characters(blacklist_categories=("Cs", "Cc")),
               min_size=1, max_size=120).filter(
    lambda s: " ".join(s.split()) == s)  # as one line, as compose makes it
FILES = st.lists(st.tuples(NAME, st.sampled_from(
    ["application/pdf", "image/png", "text/plain", "bad type", ""]),
    st.binary(max_size=300)), max_size=3)


def read_back(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def lines_of(data: bytes) -> list[bytes]:
    assert data.endswith(b"\r\n")
    return data[:-2].split(b"\r\n")


@settings(max_examples=150, deadline=None)
@given(subject=NAME, who=NAME, text=TEXT, html=TEXT, files=FILES)
def test_what_goes_in_comes_back_out(subject: str, who: str, text: str,
                                     html: str,
                                     files: list[tuple[str, str, bytes]]
                                     ) -> None:
    headers = [("From", _mailbox(who, "help@reply.example.test")),
               ("Subject", subject), ("Message-ID", "<a.b@reply.example.test>")]
    data = wire.message(headers, text, html, files)

    assert data.isascii()
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\r" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in lines_of(data)) <= 998

    msg = read_back(data)
    assert msg["Subject"] == subject
    assert msg["From"].addresses[0].display_name == who
    assert sorted(msg.keys()) == sorted(
        ["From", "Subject", "Message-ID", "MIME-Version", "Content-Type"])

    def same(got: str, want: str) -> None:
        # Line breaks of any kind come back as CRLF; text gains a final one.
        norm = want.replace("\r\n", "\n").replace("\r", "\n")
        assert got.replace("\r\n", "\n") == norm + ("" if norm.endswith(
            "\n") else "\n")

    plain, rich = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain is not None and rich is not None
    same(plain.get_content(), text)
    same(rich.get_content(), html)
    kept = list(msg.iter_attachments())
    assert [(p.get_filename(), p.get_payload(decode=True)) for p in kept] \
        == [(name, blob) for name, _ctype, blob in files]
    assert all(not part.defects for part in msg.walk())


def test_a_value_cannot_add_a_header_of_its_own() -> None:
    """CR and LF inside a value are spaces: a subject cannot smuggle in
    a Bcc."""
    data = wire.message([("Subject", "Hi\r\nBcc: all@victim.example\nX: y")],
                        "t", "h")
    msg = read_back(data)
    assert msg["Bcc"] is None and msg["X"] is None
    assert msg["Subject"] == "Hi Bcc: all@victim.example X: y"


def test_long_headers_fold_at_spaces_and_ids_stay_whole() -> None:
    ids = " ".join(f"<{n}.{'k' * 30}@reply.example.test>" for n in range(11))
    data = wire.message([("References", ids)], "t", "h")
    head = data.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert read_back(data)["References"].split() == ids.split()


def test_an_empty_value_leaves_its_header_out() -> None:
    data = wire.message([("In-Reply-To", ""), ("Subject", "x")], "t", "h")
    assert read_back(data)["In-Reply-To"] is None
