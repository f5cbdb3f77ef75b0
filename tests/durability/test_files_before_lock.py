"""A mail's files are written while it is read, before its transaction
takes the write lock; the transaction then names the file written."""

from __future__ import annotations

import hashlib
import os
import time

from durability_kit import (
    customer,
    gateway_thread,
    make_mail,
    open_cases,
    reply_address,
)
from sqlalchemy import func, select

from casemail.addresses import Party
from casemail.db import models as m
from casemail.intake.pipeline import Pipeline
from casemail.intake.rawstore import Envelope
from casemail.mime.filestore import path_for
from casemail.runtime import Runtime


def test_a_file_is_on_disk_once_read_and_named_once_filed(
        runtime: Runtime) -> None:
    [case] = open_cases(runtime, 1)
    to = reply_address(runtime, case, Party.CUSTOMER)
    raw = make_mail(sender=customer(0), to=to, subject="Re: licence",
                    text="The error, attached.", message_id="<f@c.example>",
                    png="error.png")
    pipeline = Pipeline(runtime)

    route = pipeline.route(to)
    reading = pipeline.read(raw, customer(0), [route])
    [part] = reading.mail.attachments
    assert part.kept
    stored = path_for(runtime.settings.files_dir, part.sha256)
    assert stored.read_bytes() == part.data
    assert part.sha256 == hashlib.sha256(part.data).hexdigest()
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(m.RawMail)) == 0

    outcome = pipeline.process(raw, Envelope(customer(0), to), route,
                               reading)
    assert outcome.status == "filed"
    with runtime.sessions() as s:
        [row] = s.scalars(select(m.Attachment)).all()
    assert (row.sha256, row.kept) == (part.sha256, True)
    assert len([p for p in runtime.settings.files_dir.rglob("*")
                if p.is_file()]) == 1


def test_a_start_removes_the_half_written_files_a_crash_left(
        runtime: Runtime) -> None:
    # Killed between writing a file and renaming it into place, the
    # gateway leaves a temporary file as large as the mail's attachment,
    # named by nothing. The next start removes those from before it;
    # one being written right now (another instance) stays.
    folder = runtime.settings.files_dir / "ab" / "cd"
    folder.mkdir(parents=True)
    left = folder / ".tmp-crashed"
    left.write_bytes(b"x" * 4096)
    hours_ago = time.time() - 2 * 3600
    os.utime(left, (hours_ago, hours_ago))
    writing = folder / ".tmp-now"
    writing.write_bytes(b"y")
    kept = folder / ("ab" + "cd" + "0" * 60)
    kept.write_bytes(b"z")
    os.utime(kept, (hours_ago, hours_ago))

    with gateway_thread(runtime, sweep=True):
        deadline = time.monotonic() + 10
        while left.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    assert not left.exists()
    assert writing.exists() and kept.exists()
