"""A mail accepted but not applicable is kept with its error, retried up
to the limit, listed for a person, and filed by ``casemail reprocess``
once the fault is gone.

The fault is real: the attachment store's directory is blocked by a file
where the directory should be (what a botched restore leaves behind), so
writing the PNG fails with an OSError inside the case service. Removing
the file is the fix. (A chmod would do as well, but not for root.)
"""

from __future__ import annotations

import hashlib

import pytest
from durability_kit import (
    MAX_ATTEMPTS,
    Letter,
    customer,
    make_mail,
    message_counts,
    open_cases,
    reply_address,
    send_once,
    serve_env,
    tiny_png,
)
from sqlalchemy import select

from casemail.addresses import Party
from casemail.cli.main import main
from casemail.db import models as m
from casemail.intake.pipeline import Pipeline
from casemail.mime.filestore import path_for
from casemail.runtime import Runtime

MID = "<screenshot@customer.example>"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().out


def raw_row(rt: Runtime) -> m.RawMail:
    with rt.sessions() as s:
        return s.scalars(select(m.RawMail)).one()


def test_quarantined_mail_waits_for_a_person_then_is_filed_once(
        runtime: Runtime, smtp_port: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Kept at 250, retried until the limit, listed, left alone by a
    redelivery, and filed exactly once by ``reprocess`` after the fix."""
    for key, value in serve_env(runtime.settings, 0).items():
        monkeypatch.setenv(key, value)
    [case] = open_cases(runtime, 1)
    to = reply_address(runtime, case, Party.CUSTOMER)
    letter = Letter(MID, customer(0), to, make_mail(
        sender=customer(0), to=to, subject="Re: licence",
        text="Screenshot of the error attached.", message_id=MID,
        png="error.png"))
    blocker = runtime.settings.files_dir
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a directory\n")

    # Accepted: the sender's job is done, the mail is ours to keep.
    code, reply = send_once(smtp_port, letter)
    assert (code, "processed later" in reply) == (250, True)
    row = raw_row(runtime)
    assert (row.status, row.attempts) == ("quarantined", 1)
    assert "NotADirectoryError" in row.error or "FileExists" in row.error
    assert MID not in message_counts(runtime)

    code, out = cli(capsys, "quarantine", "list")
    assert code == 0 and f"1/{MAX_ATTEMPTS} retrying" in out

    # The gateway's passes retry it until the limit, then stop.
    pipeline = Pipeline(runtime)
    passes = [len(pipeline.retry_quarantined()) for _ in range(MAX_ATTEMPTS)]
    assert passes == [1] * (MAX_ATTEMPTS - 1) + [0]
    assert raw_row(runtime).attempts == MAX_ATTEMPTS
    code, out = cli(capsys, "quarantine", "list")
    assert "needs a person" in out

    # The sender delivering it again changes nothing.
    assert send_once(smtp_port, letter)[0] == 250
    assert raw_row(runtime).attempts == MAX_ATTEMPTS

    code, out = cli(capsys, "quarantine", "show", str(row.id))
    assert code == 0 and MID in out and "Screenshot" not in out

    # Fixed: a person applies it again; a second reprocess does nothing.
    blocker.unlink()
    code, out = cli(capsys, "reprocess", str(row.id))
    assert code == 0 and "filed" in out
    assert cli(capsys, "reprocess", str(row.id))[1].count("duplicate") == 1
    assert message_counts(runtime)[MID] == 1
    assert raw_row(runtime).status == "filed"
    digest = hashlib.sha256(tiny_png()).hexdigest()
    assert path_for(runtime.settings.files_dir, digest).read_bytes() \
        == tiny_png()
    assert "empty" in cli(capsys, "quarantine", "list")[1]


def test_a_quarantined_mail_is_filed_by_the_next_automatic_pass(
        runtime: Runtime, smtp_port: int) -> None:
    """Fixed before the limit: the gateway's own retry files it."""
    [case] = open_cases(runtime, 1)
    to = reply_address(runtime, case, Party.CUSTOMER)
    letter = Letter(MID, customer(0), to, make_mail(
        sender=customer(0), to=to, subject="Re: licence", text="See file.",
        message_id=MID, png="error.png"))
    blocker = runtime.settings.files_dir
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a directory\n")
    assert send_once(smtp_port, letter)[0] == 250
    blocker.unlink()

    [outcome] = Pipeline(runtime).retry_quarantined()

    assert outcome.status == "filed"
    assert message_counts(runtime)[MID] == 1
    assert Pipeline(runtime).retry_quarantined() == []
