"""What the raw mail row says once each kind of mail is answered, over
real SMTP, on SQLite and PostgreSQL.

The row is written saying "filed" in the case its address names and
changed only when the mail turns out otherwise: every other outcome must
still be written in full (status, outcome text, case), also when the
mails come in one batch together, when a fault quarantines one and it
is applied again later, and when a sender delivers the same mail twice.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hostile_serve import (
    Letter,
    Pending,
    customer,
    held_database,
    make_mail,
    open_cases,
    reply_address,
    send_once,
    wait_for,
)
from sqlalchemy import select

from casemail.addresses import Party
from casemail.config import Settings, load_settings
from casemail.db import models as m
from casemail.intake import rawstore
from casemail.intake.pipeline import Pipeline
from casemail.runtime import Runtime

MERCHANT = "desk@nordlicht-audio.example"  # the team of ``open_cases``
FILED = "2.0.0 Message filed"
HELD = "2.0.0 Message kept for review"
EMPTY = "2.0.0 Empty message kept; the case is unchanged"
RECORDED = "2.0.0 Automated message recorded"
POSTMASTER = "2.0.0 Message kept for the postmaster"
QUARANTINED = "2.0.0 Message kept; it will be processed later"
DUPLICATE = "2.0.0 Message already filed"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return load_settings(
        None, data_dir=tmp_path / "var", database_url=db_url,
        signing_keys={"1": "hostile-raw-outcome-key-0123456789"},
        max_processing_attempts=3,
        listener={"host": "127.0.0.1", "port": 0})


def _head(sender: str, to: str, mid: str, extra: str = "") -> str:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: Re: licence\r\n"
            f"Message-ID: {mid}\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
            f"{extra}")


def _letters(rt: Runtime, a: int, b: int, c: int
             ) -> dict[str, tuple[Letter, tuple[str, str, int | None]]]:
    """One mail of every kind, with the row it must leave behind."""
    domain = rt.settings.reply_domain
    cust_a = reply_address(rt, a, Party.CUSTOMER)
    cust_b = reply_address(rt, b, Party.CUSTOMER)
    merch_b = reply_address(rt, b, Party.MERCHANT)
    base = f"case@{domain}"
    with rt.sessions() as s:
        outbox = s.scalars(select(m.Outbox).where(m.Outbox.case_id == c)
                           .order_by(m.Outbox.id)).first()
        assert outbox is not None
        verp, sent_id = outbox.envelope_from, outbox.message_id

    def plain(name: str, sender: str, to: str, text: str,
              **kw: str) -> Letter:
        mid = f"<{name}@hostile.example>"
        return Letter(mid, sender, to, make_mail(
            sender=sender, to=to, subject="Re: licence", text=text,
            message_id=mid, **kw))

    def raw(name: str, sender: str, to: str, text: str) -> Letter:
        return Letter(f"<{name}@hostile.example>", sender, to,
                      text.encode())

    bounce_text = (
        _head(f"MAILER-DAEMON@mx.{domain}", verp, "<bounce@hostile.example>",
              "MIME-Version: 1.0\r\nContent-Type: multipart/report; "
              "report-type=delivery-status; boundary=b\r\n")
        + "Subject: Undelivered Mail Returned to Sender\r\n\r\n--b\r\n"
        "Content-Type: text/plain\r\n\r\nYour mail could not be "
        "delivered.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example\r\n\r\n"
        "Final-Recipient: rfc822; help@nordlicht-audio.example\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n--b\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {sent_id}\r\n--b--\r\n")
    return {
        "filed": (plain("filed", customer(0), cust_a, "Still no key."),
                  ("filed", FILED, a)),
        "held": (plain("held", "mallory@elsewhere.example", merch_b,
                       "Refund approved, click here."),
                 ("held", HELD, b)),
        "empty": (raw("empty", customer(0), cust_a, _head(
            customer(0), cust_a, "<empty@hostile.example>") + "\r\n"
            "On Mon, 2 Mar 2026 at 10:00, Help "
            "<help@nordlicht-audio.example> wrote:\r\n"
            "> Your key is attached.\r\n> Regards\r\n"),
            ("empty", EMPTY, a)),
        "auto-reply": (raw("ooo", customer(1), cust_b, _head(
            customer(1), cust_b, "<ooo@hostile.example>",
            "Auto-Submitted: auto-replied\r\n")
            + "Subject: Out of office\r\n\r\nAway until Monday.\r\n"),
            ("ignored", RECORDED, b)),
        "list": (raw("list", "news@lists.example", cust_a, _head(
            "news@lists.example", cust_a, "<list@hostile.example>",
            "List-Id: Plugin news <news.lists.example>\r\n"
            "List-Unsubscribe: <mailto:leave@lists.example>\r\n"
            "Precedence: list\r\n") + "\r\nThis week in plugins.\r\n"),
            ("ignored", RECORDED, a)),
        "bounce": (Letter("<bounce@hostile.example>", "", verp,
                          bounce_text.encode()),
                   ("ignored", RECORDED, c)),
        "postmaster": (plain("pm", "admin@elsewhere.example",
                             f"postmaster@{domain}", "Your server is ok?"),
                       ("postmaster", POSTMASTER, None)),
        "threaded": (raw("threaded", customer(0), base, _head(
            customer(0), base, "<threaded@hostile.example>",
            f"In-Reply-To: {rt.signer.message_id(a, Party.CUSTOMER)}\r\n")
            + "\r\nThe key from your last mail fails too.\r\n"),
            ("filed", FILED, a)),
    }


def _rows(rt: Runtime) -> dict[str, tuple[str, str, int | None, str]]:
    with rt.sessions() as s:
        rows = s.scalars(select(m.RawMail).order_by(m.RawMail.id)).all()
        found = {}
        for row in rows:
            data = rawstore.data_of(row, rt.settings.files_dir)
            start = data.find(b"Message-ID: <") + 13
            name = data[start:data.find(b"@", start)].decode()
            found[name] = (row.status, row.outcome, row.case_id, row.error)
        return found


def test_each_outcome_is_written_whole_one_mail_at_a_time(
        runtime: Runtime, port: int) -> None:
    a, b, c = open_cases(runtime, 3)
    letters = _letters(runtime, a, b, c)
    for name, (letter, (status, outcome, _)) in letters.items():
        code, text = send_once(port, letter)
        assert (code, text) == (250, outcome), name
    rows = _rows(runtime)
    expected = {letter.message_id[1:].split("@")[0]: (*row, "")
                for letter, row in letters.values()}
    assert rows == expected


def test_each_outcome_is_written_whole_in_one_batch(
        runtime: Runtime, port: int) -> None:
    a, b, c = open_cases(runtime, 3)
    letters = _letters(runtime, a, b, c)
    domain = runtime.settings.reply_domain
    stray = Letter("<stray@hostile.example>", customer(5), f"case@{domain}",
                   make_mail(sender=customer(5), to=f"case@{domain}",
                             subject="Hello", text="Anyone there?",
                             message_id="<stray@hostile.example>"))
    again = letters["filed"][0]
    with held_database(runtime) as held:
        first = Pending(port, again, whole=True)
        assert wait_for(held.waiting)
        # While the first mail waits, the rest queue: one batch, which
        # holds a refused mail (no case) and the first mail once more.
        rest = [Pending(port, letter, whole=True)
                for letter, _ in letters.values()]
        rest.append(Pending(port, stray, whole=True))
    answers = [first.finish()] + [p.finish() for p in rest]
    assert answers[0] == (250, FILED)
    # The copy of the first mail waited behind it: already filed.
    expected_answers = [(250, outcome) for _, (_, outcome, _) in
                        letters.values()]
    expected_answers[0] = (250, DUPLICATE)
    assert answers[1:-1] == expected_answers
    assert answers[-1][0] == 550
    rows = _rows(runtime)
    expected = {letter.message_id[1:].split("@")[0]: (*row, "")
                for letter, row in letters.values()}
    assert rows == expected


def test_a_quarantined_mail_then_applied_again_ends_filed_in_its_case(
        runtime: Runtime, port: int) -> None:
    [case] = open_cases(runtime, 1)
    to = reply_address(runtime, case, Party.CUSTOMER)
    files = runtime.settings.files_dir
    files.parent.mkdir(parents=True, exist_ok=True)
    files.write_text("a file where the folder of attachments should be\n")
    letter = Letter("<shot@hostile.example>", customer(0), to, make_mail(
        sender=customer(0), to=to, subject="Re: licence",
        text="Screenshot attached.", message_id="<shot@hostile.example>",
        png="shot.png"))
    assert send_once(port, letter) == (250, QUARANTINED)
    [(status, outcome, case_id, error)] = _rows(runtime).values()
    assert status == "quarantined"
    assert case_id is None and outcome == ""
    assert "Error" in error and str(files) in error
    with runtime.sessions() as s:
        assert s.scalars(select(m.Message).where(
            m.Message.message_id == letter.message_id)).all() == []

    # The sender tries again before the fault is fixed: still kept, one row.
    assert send_once(port, letter) == (250, QUARANTINED)
    with runtime.sessions() as s:
        [row] = s.scalars(select(m.RawMail)).all()
        assert (row.status, row.attempts) == ("quarantined", 2)
        row_id = row.id

    files.unlink()
    outcome_again = Pipeline(runtime).reprocess(row_id)
    assert (outcome_again.status, outcome_again.case_id) == ("filed", case)
    assert list(_rows(runtime).values()) == [("filed", FILED, case, "")]
    # And once more from the sender: a duplicate, nothing new.
    assert send_once(port, letter) == (250, DUPLICATE)
    with runtime.sessions() as s:
        [msg] = s.scalars(select(m.Message).where(
            m.Message.message_id == letter.message_id)).all()
        [att] = msg.attachments
        assert att.kept
    from casemail.mime.filestore import read_file
    assert read_file(files, att.sha256)[:8] == b"\x89PNG\r\n\x1a\n"
    shutil.rmtree(files)
