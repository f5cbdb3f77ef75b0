"""The mail's own rows, written straight through the connection, treated
roughly: the same mail twice and to two cases at once, a mail whose
filing fails after most of its rows were written, a mail of several
megabytes, a reply with a file refused, a merchant-side mail from
outside the team; and afterwards, the case's timeline as ``casemail case
show`` prints it: complete, and in order.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import smtplib
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
from hostile_serve import (
    Letter,
    customer,
    make_mail,
    message_counts,
    open_cases,
    reply_address,
    rows_of,
    send_once,
    serve_env,
    tiny_png,
)
from sqlalchemy import func, select

from casemail.addresses import Party
from casemail.cli.main import main
from casemail.clock import Clock, SystemClock
from casemail.config import Settings, load_settings
from casemail.db import models as m
from casemail.intake import rawstore
from casemail.outbound.compose import bundled_templates
from casemail.runtime import Runtime

MERCHANT = "desk@nordlicht-audio.example"  # on the store's team
OUTSIDER = "reseller@elsewhere.example"  # not on it
# What a Windows program starts with: sniffed as one, whatever its name.
PROGRAM = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    templates = tmp_path / "templates"
    shutil.copytree(bundled_templates(), templates)
    return load_settings(
        None, data_dir=tmp_path / "var", database_url=db_url,
        signing_keys={"1": "hostile-rows-key-0123456789abcdef"},
        max_processing_attempts=3, templates_dir=templates,
        listener={"host": "127.0.0.1", "port": 0})


@pytest.fixture
def clock() -> Clock:
    # The gateway here and the commands run below share one clock, the
    # real one, so that the timeline's times can be compared.
    return SystemClock()


@pytest.fixture
def cli(runtime: Runtime, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Callable[..., str]:
    """``cli(*argv)``: the casemail command on the test's database."""
    for key, value in serve_env(runtime.settings, 0).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CASEMAIL_TEMPLATES_DIR",
                       str(runtime.settings.templates_dir))

    def run(*argv: str) -> str:
        capsys.readouterr()
        code = main(list(argv))
        out = capsys.readouterr()
        assert code == 0, out.err
        return out.out
    return run


def break_template(rt: Runtime, name: str) -> str:
    """Make one template unreadable to Jinja (a bad edit, a botched
    deploy); the good text, to put back."""
    assert rt.settings.templates_dir is not None
    path = rt.settings.templates_dir / name
    good = path.read_text()
    path.write_text("{% if %}\n" + good)
    return good


def restore_template(rt: Runtime, name: str, good: str) -> None:
    assert rt.settings.templates_dir is not None
    (rt.settings.templates_dir / name).write_text(good)


def with_files(sender: str, to: str, message_id: str, text: str,
               files: list[tuple[str, bytes, str]]) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = "Re: Plugin licence not activating"
    msg["Message-ID"] = message_id
    msg["Date"] = "Mon, 02 Mar 2026 11:00:00 +0000"
    msg.set_content(text)
    for name, data, declared in files:
        maintype, subtype = declared.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype,
                           filename=name)
    return msg.as_bytes().replace(b"\n", b"\r\n")


def raw_mails(rt: Runtime) -> list[m.RawMail]:
    with rt.sessions() as s:
        return list(s.scalars(select(m.RawMail).order_by(m.RawMail.id)))


def kept_bytes(rt: Runtime, row: m.RawMail) -> bytes:
    """A raw mail's bytes, from its row or, when large, its file."""
    return rawstore.data_of(row, rt.settings.files_dir)


def case_row(rt: Runtime, case_id: int) -> tuple[object, ...]:
    with rt.sessions() as s:
        case = s.get(m.Case, case_id)
        assert case is not None
        return (case.state, case.unread, case.last_activity_at,
                case.warned_at)


# -- the same mail, more than once ------------------------------------------


def test_one_mail_to_two_cases_and_twice_to_one_is_filed_once_each(
        runtime: Runtime, port: int) -> None:
    """One envelope names case 1, case 2 and case 1 again (in capitals,
    as some servers write it): one 250, each case files the mail once.
    The same envelope again, and then for case 2 alone: 'already filed',
    and nothing more is written."""
    one, two = open_cases(runtime, 2)
    to_one = reply_address(runtime, one, Party.CUSTOMER)
    to_two = reply_address(runtime, two, Party.CUSTOMER)
    mid = "<both-cases@customer.example>"
    data = make_mail(sender=customer(0), to=f"{to_one}, {to_two}",
                     subject="Re: licence", text="Same problem on both "
                     "orders: the key is refused.", message_id=mid)

    def send(*rcpts: str) -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo("mx.customer.example")
            client.mail(customer(0))
            for rcpt in rcpts:
                assert client.rcpt(rcpt)[0] == 250
            return client.data(data)

    assert send(to_one, to_two, to_one.upper()) == (
        250, b"2.0.0 Message filed")
    written = rows_of(runtime)
    assert send(to_one, to_two, to_one.upper()) == (
        250, b"2.0.0 Message already filed")
    assert send(to_two) == (250, b"2.0.0 Message already filed")

    assert rows_of(runtime) == written
    assert [(r.case_id, r.status) for r in raw_mails(runtime)] == [
        (one, "filed"), (two, "filed")]
    assert message_counts(runtime) == {mid: 2}
    with runtime.sessions() as s:
        filed = s.execute(select(m.Message.case_id, func.count())
                          .where(m.Message.message_id == mid)
                          .group_by(m.Message.case_id)).all()
        notices = s.execute(select(m.Outbox.case_id, func.count())
                            .where(m.Outbox.template == "customer_reply")
                            .group_by(m.Outbox.case_id)).all()
    assert sorted(filed) == [(one, 1), (two, 1)]
    assert sorted(notices) == [(one, 1), (two, 1)]


# -- a conversation, with a mail that fails halfway -----------------------------


def test_a_mail_failing_halfway_leaves_only_its_copy_and_a_whole_timeline(
        runtime: Runtime, port: int, cli: Callable[..., str]) -> None:
    """The merchant answers by mail; someone outside the team writes to
    the merchant's address (held); the customer replies with a
    screenshot and a program, and the notice about the refused program
    cannot be written (its template is broken), after the message, its
    files, its timeline entries and the merchant's notification were
    written. That mail is kept, quarantined, and nothing else of that
    attempt remains. Fixed and reprocessed, it is filed once; the
    timeline shows every step once, in order."""
    [case] = open_cases(runtime, 1)
    to_customer_side = reply_address(runtime, case, Party.CUSTOMER)
    to_merchant_side = reply_address(runtime, case, Party.MERCHANT)

    answer = Letter("<answer@nordlicht.example>", MERCHANT, to_merchant_side,
                    with_files(MERCHANT, to_merchant_side,
                               "<answer@nordlicht.example>",
                               "Please send a screenshot of the error.",
                               [("where-to-click.png", tiny_png(),
                                 "image/png")]))
    assert send_once(port, answer) == (250, "2.0.0 Message filed")
    cli("case", "read", str(case))

    outsider = Letter("<resell@elsewhere.example>", OUTSIDER,
                      to_merchant_side, make_mail(
                          sender=OUTSIDER, to=to_merchant_side,
                          subject="Re: licence", text="I can sell you "
                          "keys for less.",
                          message_id="<resell@elsewhere.example>"))
    before = rows_of(runtime), case_row(runtime, case)
    assert send_once(port, outsider) == (250,
                                         "2.0.0 Message kept for review")
    after = rows_of(runtime)
    assert case_row(runtime, case) == before[1]  # moved nothing
    assert after["outbox"] == before[0]["outbox"]  # told no one

    reply_id = "<screenshot@customer.example>"
    reply = Letter(reply_id, customer(0), to_customer_side, with_files(
        customer(0), to_customer_side, reply_id,
        "Here is the screenshot, and the tool your colleague sent me.",
        [("error.png", tiny_png(), "image/png"),
         ("fix.exe", PROGRAM + b"\x00" * 300, "application/octet-stream")]))
    good = break_template(runtime, "attachment_refused.txt")
    assert send_once(port, reply) == (
        250, "2.0.0 Message kept; it will be processed later")
    kept = raw_mails(runtime)[-1]
    assert kept.status == "quarantined" and kept.attempts == 1
    assert "TemplateSyntaxError" in kept.error
    assert rows_of(runtime) == {**after, "raw_mails": after["raw_mails"] + 1}
    assert case_row(runtime, case) == before[1]
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(m.Message).where(
            m.Message.raw_mail_id == kept.id)) == 0

    restore_template(runtime, "attachment_refused.txt", good)
    assert "filed" in cli("reprocess", str(kept.id))
    assert send_once(port, reply) == (250, "2.0.0 Message already filed")
    assert message_counts(runtime) == {answer.message_id: 1,
                                       outsider.message_id: 1, reply_id: 1}

    shown = json.loads(cli("case", "show", str(case), "--json"))
    timeline = shown["timeline"]
    steps = [(e["kind"], e["party"]) for e in timeline]
    assert steps == [
        ("opened", "customer"), ("message", "customer"),
        ("message", "merchant"), ("state_changed", "merchant"),
        ("marked_read", "merchant"),
        ("held", "merchant"),
        ("message", "customer"), ("attachment_refused", "customer"),
        ("state_changed", "customer")]
    ids = [e["id"] for e in timeline]
    assert ids == sorted(set(ids))
    times = [e["at"] for e in timeline]
    assert times == sorted(times)
    merchant_said, held, customer_said, refused = (
        timeline[2], timeline[5], timeline[6], timeline[7])
    assert [f["filename"] for f in merchant_said["attachments_kept"]] == [
        "where-to-click.png"]
    assert OUTSIDER in held["detail"]["reason"]
    assert held["message"]["held"] is True
    assert "screenshot" in customer_said["text"]
    assert [f["filename"] for f in customer_said["attachments_kept"]] == [
        "error.png"]
    assert [(f["filename"], f["content_type"])
            for f in customer_said["attachments_refused"]] == [
        ("fix.exe", "application/x-dosexec")]
    assert (refused["detail"]["filename"],
            refused["detail"]["content_type"]) == (
        "fix.exe", "application/x-dosexec")
    assert timeline[8]["detail"] == {"before": "awaiting_customer",
                                     "after": "awaiting_merchant"}
    assert shown["state"] == "awaiting_merchant" and shown["unread"]
    assert [(x["template"], x["to"]) for x in shown["mail"]] == [
        ("new_case", MERCHANT), ("merchant_reply", customer(0)),
        ("customer_reply", MERCHANT), ("attachment_refused", customer(0))]


# -- a large mail ----------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_mail_of_several_megabytes_is_kept_byte_for_byte(
        runtime: Runtime, port: int, cli: Callable[..., str]) -> None:
    """On SQLite a large mail's bytes are written last, in pieces. A
    3 MB log file filed and delivered again; a 5 MB mail quarantined
    (its refusal notice cannot be written) and reprocessed: every raw
    mail holds exactly the bytes received, and the files are kept."""
    one, two = open_cases(runtime, 2)
    log = b"".join(b"%08d " % n + os.urandom(20).hex().encode() + b"\n"
                   for n in range(62000))
    program = PROGRAM + os.urandom(2_000_000)
    first_to = reply_address(runtime, one, Party.CUSTOMER)
    first = Letter("<big-1@customer.example>", customer(0), first_to,
                   with_files(customer(0), first_to,
                              "<big-1@customer.example>", "The full log.",
                              [("plugin.log", log, "text/plain")]))
    second_to = reply_address(runtime, two, Party.CUSTOMER)
    second = Letter("<big-2@customer.example>", customer(1), second_to,
                    with_files(customer(1), second_to,
                               "<big-2@customer.example>",
                               "The log and the installer I used.",
                               [("plugin.log", log, "text/plain"),
                                ("setup.exe", program,
                                 "application/octet-stream")]))
    assert len(first.data) > 3_000_000 and len(second.data) > 5_000_000

    assert send_once(port, first) == (250, "2.0.0 Message filed")
    assert send_once(port, first) == (250, "2.0.0 Message already filed")
    good = break_template(runtime, "attachment_refused.txt")
    assert send_once(port, second) == (
        250, "2.0.0 Message kept; it will be processed later")
    stored = raw_mails(runtime)
    assert [r.status for r in stored] == ["filed", "quarantined"]
    assert [kept_bytes(runtime, r) for r in stored] == [first.data,
                                                       second.data]

    restore_template(runtime, "attachment_refused.txt", good)
    assert "filed" in cli("reprocess", str(stored[1].id))
    assert send_once(port, second) == (250, "2.0.0 Message already filed")
    stored = raw_mails(runtime)
    assert [r.status for r in stored] == ["filed", "filed"]
    assert [kept_bytes(runtime, r) for r in stored] == [first.data,
                                                       second.data]
    assert [(r.size, r.sha256) for r in stored] == [
        (len(x.data), hashlib.sha256(x.data).hexdigest())
        for x in (first, second)]
    with runtime.sessions() as s:
        files = s.execute(select(m.Attachment.filename, m.Attachment.kept,
                                 m.Attachment.size)
                          .order_by(m.Attachment.id)).all()
    # The cases were opened without files: these are the two mails'.
    assert files == [("plugin.log", True, len(log)),
                     ("plugin.log", True, len(log)),
                     ("setup.exe", False, len(program))]
    assert message_counts(runtime) == {first.message_id: 1,
                                       second.message_id: 1}
