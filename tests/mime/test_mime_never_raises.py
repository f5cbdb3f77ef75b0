"""Property tests: whatever bytes arrive, read_mail answers and keeps them."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casemail.mime.reader import read_mail

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mime"
SEEDS = sorted(p.read_bytes() for p in FIXTURES.glob("*.eml"))

# Pieces that MIME parsers trip over, spliced into real mail.
NASTY = [b"\r\n", b"\n\n", b"--", b"=?utf-8?B?", b"?=", b"=?", b"\xff\xfe",
         b"boundary=", b'"', b";", b"Content-Type: multipart/mixed\n",
         b"Content-Transfer-Encoding: base64\n", b"charset=x-bogus",
         b"filename*0*=utf-8''%E4", b"\x00", b"=\n", b"=XX", b"\t"]


def mutate(seed: bytes, cuts: list[tuple[int, int, bytes]]) -> bytes:
    data = bytearray(seed)
    for at, length, insert in cuts:
        at %= len(data) + 1
        data[at:at + length] = insert
    return bytes(data)


def check(raw: bytes) -> None:
    mail = read_mail(raw)
    assert mail.raw == raw
    assert mail.message_id.startswith("<") and mail.message_id.endswith(">")
    assert isinstance(mail.new_text, str)
    assert all(isinstance(d, str) and d for d in mail.defects)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    check(raw)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS),
       st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 40),
                          st.one_of(st.sampled_from(NASTY),
                                    st.binary(max_size=20))),
                max_size=8))
def test_mutated_mail_never_raises(seed: bytes,
                                   cuts: list[tuple[int, int, bytes]]) -> None:
    check(mutate(seed, cuts))


@settings(max_examples=200)
@given(st.text(max_size=300), st.text(max_size=300))
def test_any_header_text_never_raises(subject: str, sender: str) -> None:
    raw = (f"From: {sender}\nSubject: {subject}\n\nbody\n"
           .encode("utf-8", "surrogatepass"))
    check(raw)


def test_huge_header_is_read_in_reasonable_time() -> None:
    raw = b"Subject: " + b"=?utf-8?q?a?= " * 50_000 + b"\nTo: " + \
        b"a@b, " * 50_000 + b"\n\nhi\n"
    check(raw)
