"""A mail's files are written while it is read, before its transaction
takes the write lock; the transaction then names the file written."""

from __future__ import annotations

import hashlib

from durability_kit import customer, make_mail, open_cases, reply_address
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
