"""A large mail is kept as a file written before its transaction, the
row naming it; a small one in its row; and when the file cannot be
written, the row holds the mail as before. Each is read back the same
way (``rawstore.data_of``), over real SMTP, from the real database."""

from __future__ import annotations

import hashlib

import pytest
from durability_kit import (
    Letter,
    customer,
    make_mail,
    open_cases,
    reply_address,
    send_once,
)
from sqlalchemy import select

from casemail.addresses import Party
from casemail.cli.main import main
from casemail.db import models as m
from casemail.intake import rawstore
from casemail.mime.filestore import path_for
from casemail.runtime import Runtime


def _letter(rt: Runtime, case: int, mid: str, text: str) -> Letter:
    to = reply_address(rt, case, Party.CUSTOMER)
    return Letter(mid, customer(0), to, make_mail(
        sender=customer(0), to=to, subject="Re: licence", text=text,
        message_id=mid))


def _row(rt: Runtime, mid: str) -> m.RawMail:
    with rt.sessions() as s:
        return next(r for r in s.scalars(select(m.RawMail))
                    if mid.encode() in rawstore.data_of(r, rt.settings.files_dir))


def _long_text(n: int) -> str:
    line = "The licence key still fails with error 0x80070005 here.\n"
    return line * (n // len(line) + 1)


def test_a_large_mail_is_a_file_a_small_one_a_row(
        runtime: Runtime, smtp_port: int) -> None:
    [case] = open_cases(runtime, 1)
    big = _letter(runtime, case, "<big@c.example>", _long_text(60_000))
    small = _letter(runtime, case, "<small@c.example>", "Thanks, works.")
    assert len(big.data) >= rawstore.IN_FILE_FROM > len(small.data)
    for letter in (big, small):
        assert send_once(smtp_port, letter)[0] == 250

    files = runtime.settings.files_dir
    row = _row(runtime, "<big@c.example>")
    assert (row.status, row.data, row.size) == ("filed", b"",
                                                len(big.data))
    stored = path_for(files, row.sha256).read_bytes()
    assert stored == big.data == rawstore.data_of(row, files)
    assert row.sha256 == hashlib.sha256(big.data).hexdigest()

    row = _row(runtime, "<small@c.example>")
    assert row.data == small.data and row.status == "filed"
    assert not path_for(files, row.sha256).exists()


def test_a_large_mail_stays_in_its_row_when_no_file_can_be_written(
        runtime: Runtime, smtp_port: int) -> None:
    [case] = open_cases(runtime, 1)
    blocker = runtime.settings.files_dir  # a file where the folder goes
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a directory\n")
    big = _letter(runtime, case, "<blocked@c.example>", _long_text(60_000))

    assert send_once(smtp_port, big)[0] == 250
    with runtime.sessions() as s:
        [row] = s.scalars(select(m.RawMail)).all()
    assert (row.status, row.data) == ("filed", big.data)


def test_a_large_mail_for_the_postmaster_stays_in_its_row(
        runtime: Runtime, smtp_port: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    to = f"postmaster@{runtime.settings.reply_domain}"
    letter = Letter("<pm@c.example>", customer(0), to, make_mail(
        sender=customer(0), to=to, subject="Your relay is an open relay",
        text=_long_text(40_000), message_id="<pm@c.example>"))
    assert send_once(smtp_port, letter)[0] == 250
    with runtime.sessions() as s:
        [row] = s.scalars(select(m.RawMail)).all()
    # Mail for no case writes nothing before its transaction: a stranger
    # can send it, and its bytes stay in the row with it.
    assert (row.status, row.data) == ("postmaster", letter.data)
    assert not path_for(runtime.settings.files_dir, row.sha256).exists()

    monkeypatch.setenv("CASEMAIL_DATA_DIR", str(runtime.settings.data_dir))
    monkeypatch.setenv("CASEMAIL_DATABASE_URL", runtime.settings.db_url)
    capsys.readouterr()
    assert main(["postmaster"]) == 0
    assert "Your relay is an open relay" in capsys.readouterr().out
