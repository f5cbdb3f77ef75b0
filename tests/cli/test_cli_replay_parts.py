"""The pieces of ``casemail replay`` and ``store set`` that need no server:
placeholders, the envelope read from a mail file, the counts, durations."""

from __future__ import annotations

from pathlib import Path

import pytest

from casemail.cli.replay import (
    ReplayError,
    count_of,
    envelope_of,
    fill,
    mail_files,
    on_the_wire,
    parse_labels,
)
from casemail.cli.stores import StoreError, parse_duration, show_duration
from casemail.intake import replies


def test_placeholders_are_filled_by_name_label_and_party() -> None:
    seen = []

    def resolve(name: str, label: str, party: str) -> str:
        seen.append((name, label, party))
        return f"<{name}>"
    raw = (b"To: {{customer_reply_address:case1}}\n"
           b"In-Reply-To: {{sent_message_id:case2:merchant}}\n"
           b"X: {{reply_domain}} {not a placeholder}\n")
    assert fill(raw, resolve) == (b"To: <customer_reply_address>\n"
                                  b"In-Reply-To: <sent_message_id>\n"
                                  b"X: <reply_domain> {not a placeholder}\n")
    assert seen == [("customer_reply_address", "case1", ""),
                    ("sent_message_id", "case2", "merchant"),
                    ("reply_domain", "", "")]


def test_a_placeholder_without_a_resolver_says_what_to_give() -> None:
    with pytest.raises(ReplayError, match="--case LABEL=ID"):
        fill(b"To: {{merchant_reply_address:case1}}\n", None)


def test_envelope_prefers_original_recipient_and_return_path() -> None:
    raw = (b"Return-Path: <>\nX-Original-To: case+x@reply.example.test\n"
           b"From: Mailer <mailer-daemon@mx.example>\n"
           b"To: list@groups.example\n\nbody\n")
    assert envelope_of(raw) == ("", "case+x@reply.example.test")
    assert envelope_of(raw, "other@reply.example.test")[1] == (
        "other@reply.example.test")
    plain = b"From: Lena <lena@gmail.example>\nTo: A <a@b.example>\n\nhi\n"
    assert envelope_of(plain) == ("lena@gmail.example", "a@b.example")
    with pytest.raises(ReplayError):
        envelope_of(b"From: x@y.example\n\nno recipient\n")


def test_lines_go_out_with_crlf() -> None:
    assert on_the_wire(b"a\nb\r\nc\n") == b"a\r\nb\r\nc\r\n"


@pytest.mark.parametrize("code, text, count", [
    (250, replies.ACCEPTED[4:], "accepted"),
    (250, replies.RECORDED[4:], "accepted"),
    (250, replies.HELD[4:], "held"),
    (550, "5.1.1 No such case", "refused"),
    (552, "5.3.4 too big", "refused"),
    (451, "4.3.0 later", "deferred"),
])
def test_each_answer_lands_in_one_count(code: int, text: str,
                                        count: str) -> None:
    assert count_of(code, text) == count


def test_folders_are_walked_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ["b/2.eml", "b/1.eml", "3.eml", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    names = [p.relative_to(tmp_path).as_posix() for p in mail_files([tmp_path])]
    assert names == ["3.eml", "b/1.eml", "b/2.eml"]
    with pytest.raises(ReplayError):
        mail_files([tmp_path / "missing"])


def test_case_labels_are_parsed() -> None:
    assert parse_labels(["case1=4", "x = 12"]) == {"case1": 4, "x": 12}
    with pytest.raises(ReplayError):
        parse_labels(["case1"])


@pytest.mark.parametrize("text, seconds", [
    ("14d", 14 * 86400), ("36h", 36 * 3600), ("2w", 14 * 86400),
    ("90m", 5400), ("7", 7 * 86400), ("45s", 45)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_durations_are_shown_in_the_largest_whole_unit() -> None:
    assert [show_duration(s) for s in (14 * 86400, 3 * 86400, 36 * 3600, 45)
            ] == ["2w", "3d", "36h", "45s"]
    with pytest.raises(StoreError):
        parse_duration("two weeks")
