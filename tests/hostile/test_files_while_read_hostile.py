"""A mail's kept files are written while it is read, before its
transaction: attacked over real SMTP, on SQLite and PostgreSQL.

The same file in many mails at once, a batch where one mail is refused
(no case) beside mails with files, the same mail twice, and a folder of
files that cannot be written (a file where it should be; chmod does not
stop root): a mail with a file is then quarantined with the reason and
answered 250 only as kept, the mails without files are filed, and once
the folder is back the quarantine files them with their files.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hostile_serve import (
    Letter,
    Pending,
    customer,
    held_database,
    make_mail,
    message_counts,
    open_cases,
    reply_address,
    send_once,
    tiny_png,
    wait_for,
)
from sqlalchemy import select

from casemail.addresses import Party
from casemail.config import Settings, load_settings
from casemail.db import models as m
from casemail.intake.pipeline import Pipeline
from casemail.mime.filestore import path_for
from casemail.runtime import Runtime

FILED = "2.0.0 Message filed"
QUARANTINED = "2.0.0 Message kept; it will be processed later"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return load_settings(
        None, data_dir=tmp_path / "var", database_url=db_url,
        signing_keys={"1": "hostile-files-read-key-0123456789"},
        max_processing_attempts=3,
        listener={"host": "127.0.0.1", "port": 0})


def letter(rt: Runtime, case: int, n: int, tag: str, *,
           png: str = "") -> Letter:
    to = reply_address(rt, case, Party.CUSTOMER)
    mid = f"<{tag}-{n}@hostile.example>"
    return Letter(mid, customer(n), to, make_mail(
        sender=customer(n), to=to, subject="Re: licence",
        text=f"Mail {tag} {n}.", message_id=mid, png=png))


def files_on_disk(rt: Runtime) -> list[Path]:
    root = rt.settings.files_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) \
        if root.is_dir() else []


def attachments(rt: Runtime) -> list[tuple[str, bool, str]]:
    with rt.sessions() as s:
        return [(a.message.message_id, a.kept, a.sha256) for a in
                s.scalars(select(m.Attachment).order_by(m.Attachment.id))]


def test_one_file_in_many_mails_at_once_is_stored_once_and_named_by_all(
        runtime: Runtime, port: int) -> None:
    cases = open_cases(runtime, 4)
    letters = [letter(runtime, cases[n % 4], n, "same", png="shot.png")
               for n in range(16)]
    answers: list[tuple[int, str]] = []
    start = threading.Barrier(len(letters))

    def one(x: Letter) -> None:
        start.wait()
        answers.append(send_once(port, x))

    threads = [threading.Thread(target=one, args=(x,)) for x in letters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert answers == [(250, FILED)] * len(letters)
    rows = attachments(runtime)
    assert len(rows) == len(letters)
    [digest] = {sha for _, _, sha in rows}
    assert all(kept for _, kept, _ in rows)
    # One file, whole, and no temporary file left beside it.
    assert files_on_disk(runtime) == [path_for(runtime.settings.files_dir,
                                               digest)]
    assert files_on_disk(runtime)[0].read_bytes() == tiny_png()


def test_a_refused_mail_and_a_copy_in_a_batch_with_files(
        runtime: Runtime, port: int) -> None:
    a, b = open_cases(runtime, 2)
    domain = runtime.settings.reply_domain
    stray_to = f"case@{domain}"
    stray = Letter("<stray@hostile.example>", customer(9), stray_to,
                   make_mail(sender=customer(9), to=stray_to,
                             subject="Hello", text="Anyone?", png="x.png",
                             message_id="<stray@hostile.example>"))
    good = [letter(runtime, a, 0, "good", png="a.png"),
            letter(runtime, b, 1, "good", png="b.png"),
            letter(runtime, b, 2, "plain")]
    with held_database(runtime) as held:
        first = Pending(port, good[0], whole=True)
        assert wait_for(held.waiting)
        rest = [Pending(port, x, whole=True)
                for x in [stray, *good[1:], good[0]]]
    answers = [first.finish()] + [p.finish() for p in rest]
    assert answers[0] == (250, FILED)
    assert answers[1][0] == 550
    assert answers[2:] == [(250, FILED), (250, FILED),
                           (250, "2.0.0 Message already filed")]
    counts = message_counts(runtime)
    assert "<stray@hostile.example>" not in counts
    assert all(counts.get(x.message_id) == 1 for x in good)
    rows = attachments(runtime)
    assert [(mid, kept) for mid, kept, _ in rows] == [
        (good[0].message_id, True), (good[1].message_id, True)]
    for _, _, sha in rows:
        assert path_for(runtime.settings.files_dir, sha).read_bytes() \
            == tiny_png()


def test_a_folder_of_files_that_cannot_be_written_quarantines_only_mail_with_files(
        runtime: Runtime, port: int) -> None:
    a, b = open_cases(runtime, 2)
    files = runtime.settings.files_dir
    files.parent.mkdir(parents=True, exist_ok=True)
    files.write_text("a file where the folder of attachments should be\n")
    with_file = [letter(runtime, a, 0, "file", png="a.png"),
                 letter(runtime, b, 1, "file", png="b.png")]
    without = [letter(runtime, a, 2, "text"), letter(runtime, b, 3, "text")]
    with held_database(runtime) as held:
        first = Pending(port, without[0], whole=True)
        assert wait_for(held.waiting)
        rest = [Pending(port, x, whole=True)
                for x in [with_file[0], without[1], with_file[1]]]
    answers = [first.finish()] + [p.finish() for p in rest]
    assert answers == [(250, FILED), (250, QUARANTINED), (250, FILED),
                       (250, QUARANTINED)]
    with runtime.sessions() as s:
        rows = {r.id: (r.status, r.error, r.attempts)
                for r in s.scalars(select(m.RawMail))}
    quarantined = [(i, e) for i, (st, e, _) in rows.items()
                   if st == "quarantined"]
    assert len(quarantined) == 2
    assert all(str(files) in e for _, e in quarantined), quarantined
    assert attachments(runtime) == []
    counts = message_counts(runtime)
    assert all(counts.get(x.message_id) == 1 for x in without)
    assert not any(x.message_id in counts for x in with_file)

    # The folder is back: the gateway's pass over the quarantine files
    # them, with their files.
    files.unlink()
    outcomes = Pipeline(runtime).retry_quarantined()
    assert sorted(o.status for o in outcomes) == ["filed", "filed"]
    counts = message_counts(runtime)
    assert all(counts.get(x.message_id) == 1 for x in with_file + without)
    rows_now = attachments(runtime)
    assert len(rows_now) == 2 and all(kept for _, kept, _ in rows_now)
    assert len(files_on_disk(runtime)) == 1  # one PNG, twice
    # The senders try again: nothing is filed twice.
    for x in with_file:
        assert send_once(port, x) == (250, "2.0.0 Message already filed")
    assert len(attachments(runtime)) == 2
