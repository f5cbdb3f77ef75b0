"""Group commit seen from the senders' side, over real SMTP and LMTP.

The mails that arrive while a batch is written are filed together, one
transaction with a savepoint each. Here every kind of outcome is made to
share one batch: good replies, mails that belong to no case (550), mails
whose attachment cannot be stored (quarantined), the same bytes sent
several times at once, one mail to several recipients. Each sender must
hear about its own mail and nothing else's; what was answered 250 is
there once; what was refused left no row behind. Then sessions that
hang up while their mail waits, and a gateway stopped or killed with a
batch in hand.
"""

from __future__ import annotations

import os
import signal
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_serve import (
    GatewayThread,
    Letter,
    Served,
    Tally,
    customer,
    deliver,
    free_port,
    held_database,
    make_mail,
    message_counts,
    open_cases,
    reply_address,
    rows_of,
    serve_env,
    wait_for,
)
from sqlalchemy import func, select

from casemail.addresses import Party
from casemail.config import Settings, load_settings
from casemail.db import models as m
from casemail.runtime import Runtime

FILED = (250, "2.0.0 Message filed")


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return load_settings(
        None, data_dir=tmp_path / "var", database_url=db_url,
        signing_keys={"1": "hostile-batch-key-0123456789abcdef"},
        max_processing_attempts=3,
        listener={"host": "127.0.0.1", "port": 0, "lmtp_port": 0})


@pytest.fixture
def gateway(runtime: Runtime) -> Iterator[GatewayThread]:
    gw = GatewayThread(runtime).start()
    try:
        yield gw
    finally:
        gw.stop()


class Session:
    """One transaction sent up to its final dot; the answers read later
    (one for SMTP, one per accepted recipient for LMTP)."""

    def __init__(self, port: int, mail_from: str, rcpts: list[str],
                 data: bytes, *, lmtp: bool = False) -> None:
        self.lmtp = lmtp
        self.client = smtplib.SMTP("127.0.0.1", port, timeout=30)
        if lmtp:
            code, _ = self.client.docmd("LHLO", "mx.customer.example")
            assert code == 250
        else:
            self.client.ehlo("mx.customer.example")
        assert self.client.mail(mail_from)[0] == 250
        self.rcpt_answers = [self.client.rcpt(r) for r in rcpts]
        self.accepted = sum(code == 250 for code, _ in self.rcpt_answers)
        self.client.putcmd("data")
        assert self.client.getreply()[0] == 354
        self.client.send(data + b".\r\n")

    def finish(self) -> list[tuple[int, str]]:
        try:
            count = self.accepted if self.lmtp else 1
            answers = []
            for _ in range(count):
                code, text = self.client.getreply()
                answers.append((code, text.decode()))
            return answers
        finally:
            self.client.close()

    def hang_up(self) -> None:
        self.client.close()


def _reply(rt: Runtime, case: int, n: int, mid: str, **extra: str) -> Letter:
    to = reply_address(rt, case, Party.CUSTOMER)
    return Letter(mid, customer(n), to, make_mail(
        sender=customer(n), to=to, subject="Re: licence",
        text=f"Reply {mid}, still not working.", message_id=mid, **extra))


def _per_case(rt: Runtime, model: type[m.Base]) -> dict[int, int]:
    column = model.case_id  # type: ignore[attr-defined]
    with rt.sessions() as s:
        return dict(s.execute(select(column, func.count())
                              .group_by(column)).all())


def _raw_statuses(rt: Runtime) -> dict[str, int]:
    with rt.sessions() as s:
        return dict(s.execute(select(m.RawMail.status, func.count())
                              .group_by(m.RawMail.status)).all())


def test_one_batch_of_every_outcome_answers_each_sender_its_own(
        runtime: Runtime, gateway: GatewayThread) -> None:
    rt = runtime
    cases = open_cases(rt, 7)
    base = f"case@{rt.settings.reply_domain}"
    # Attachments cannot be stored: a file where their folder should be.
    blocker = rt.settings.files_dir
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a directory\n")
    before = {model: _per_case(rt, model)
              for model in (m.Message, m.Event, m.Outbox)}
    smtp = gateway.port
    lmtp = gateway.gateway.servers[1].sockets[0].getsockname()[1]

    first = _reply(rt, cases[0], 0, "<first@c.example>")
    good = [_reply(rt, cases[n % 4], n, f"<good-{n}@c.example>")
            for n in range(8)]
    stray = [Letter(f"<stray-{n}@x.example>", customer(9), base, make_mail(
        sender=customer(9), to=base, subject="Hello",
        text="Is anyone there?", message_id=f"<stray-{n}@x.example>"))
        for n in range(3)]
    shots = [_reply(rt, cases[4], 4, f"<shot-{n}@c.example>", png="s.png")
             for n in range(2)]
    twice = _reply(rt, cases[5], 5, "<twice@c.example>")
    to_both = [reply_address(rt, cases[6], Party.CUSTOMER),
               reply_address(rt, cases[3], Party.CUSTOMER)]
    both = make_mail(sender=customer(6), to=", ".join(to_both),
                     subject="Re: both", text="To both of my cases.",
                     message_id="<both@c.example>")
    half = make_mail(sender=customer(6), to=to_both[0], subject="Re: half",
                     text="One of these is not a case.",
                     message_id="<half@c.example>")
    by_lmtp = make_mail(sender=customer(2), to=to_both[1],
                        subject="Re: lmtp", text="Through LMTP.",
                        message_id="<lmtp@c.example>")

    drain = gateway.gateway.drain
    with held_database(rt) as held:
        opening = Session(smtp, first.mail_from, [first.rcpt], first.data)
        assert wait_for(held.waiting)  # the first batch is being written
        sessions = {
            "good": [Session(smtp, g.mail_from, [g.rcpt], g.data)
                     for g in good],
            "stray": [Session(smtp, s.mail_from, [s.rcpt], s.data)
                      for s in stray],
            "shots": [Session(smtp, s.mail_from, [s.rcpt], s.data)
                      for s in shots],
            "twice": [Session(smtp, twice.mail_from, [twice.rcpt],
                              twice.data) for _ in range(3)],
            "both": [Session(smtp, customer(6), to_both, both)],
            "half": [Session(smtp, customer(6), [to_both[0], base], half)],
            "lmtp": [Session(lmtp, customer(2),
                             [to_both[1], base, to_both[0]], by_lmtp,
                             lmtp=True)],
        }
        waiting = 1 + sum(len(v) for v in sessions.values())
        assert wait_for(lambda: drain.in_flight == waiting)
    assert opening.finish() == [FILED]
    answers = {k: [s.finish() for s in v] for k, v in sessions.items()}

    assert answers["good"] == [[FILED]] * 8
    for (answer,) in answers["stray"]:
        assert answer[0] == 550 and answer[1].startswith("5.1.1 "), answer
    for (answer,) in answers["shots"]:
        assert answer[0] == 250 and "filed" not in answer[1], answer
    codes = sorted(a[0][1] for a in answers["twice"])
    assert [c[:5] for c in codes] == ["2.0.0"] * 3
    assert sum("already filed" in c for c in codes) == 2, codes
    assert answers["both"] == [[FILED]]
    assert answers["half"] == [[FILED]]  # SMTP: one answer, the best kept
    (lmtp_answers,) = answers["lmtp"]
    assert [a[0] for a in lmtp_answers] == [250, 550, 250], lmtp_answers

    filed = {"<first@c.example>": 1, "<twice@c.example>": 1,
             "<both@c.example>": 2, "<half@c.example>": 1,
             "<lmtp@c.example>": 2}
    filed.update({g.message_id: 1 for g in good})
    assert message_counts(rt) == filed
    # Kept: one raw mail per filed (mail, recipient), one per quarantined
    # mail; nothing of the refused ones.
    assert _raw_statuses(rt) == {"filed": sum(filed.values()),
                                 "quarantined": 2}
    with rt.sessions() as s:
        kept_for = set(s.scalars(select(m.RawMail.envelope_to)))
    assert base not in kept_for
    # The quarantined mails' case has nothing new but their raw rows.
    after = {model: _per_case(rt, model)
             for model in (m.Message, m.Event, m.Outbox)}
    for model in (m.Message, m.Event, m.Outbox):
        assert after[model].get(cases[4]) == before[model].get(cases[4])
    # Every filed message has exactly its one notification to the team.
    grown = {model: sum(after[model].values()) - sum(before[model].values())
             for model in after}
    assert grown[m.Message] == sum(filed.values())
    assert grown[m.Outbox] == grown[m.Message]


def test_a_sender_that_hangs_up_in_the_batch_loses_nothing_on_retry(
        runtime: Runtime, gateway: GatewayThread) -> None:
    rt = runtime
    cases = open_cases(rt, 3)
    first = _reply(rt, cases[0], 0, "<hold@c.example>")
    gone = _reply(rt, cases[1], 1, "<gone@c.example>")
    stays = _reply(rt, cases[2], 2, "<stays@c.example>")
    drain = gateway.gateway.drain
    with held_database(rt) as held:
        opening = Session(gateway.port, first.mail_from, [first.rcpt],
                          first.data)
        assert wait_for(held.waiting)
        leaving = Session(gateway.port, gone.mail_from, [gone.rcpt],
                          gone.data)
        staying = Session(gateway.port, stays.mail_from, [stays.rcpt],
                          stays.data)
        assert wait_for(lambda: drain.in_flight == 3)
        leaving.hang_up()
    assert opening.finish() == [FILED]
    assert staying.finish() == [FILED]
    # The one that hung up heard nothing, so its server sends it again:
    # filed once, whether or not its first copy made it.
    tally = Tally()
    assert deliver(gateway.port, gone, tally, deadline=_far())
    assert message_counts(rt) == {"<hold@c.example>": 1,
                                  "<gone@c.example>": 1,
                                  "<stays@c.example>": 1}
    assert wait_for(lambda: drain.in_flight == 0)


def _far() -> float:
    return time.monotonic() + 30


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_stopped_with_a_batch_in_hand_every_mail_is_filed_once(
        runtime: Runtime, settings: Settings, tmp_path: Path,
        how: signal.Signals) -> None:
    """``casemail serve`` stopped (SIGTERM) or killed (SIGKILL) while a
    batch waits for the database: what was answered 250 is kept; the
    rest is sent again and filed once."""
    rt = runtime
    cases = open_cases(rt, 4)
    letters = [_reply(rt, cases[n % 4], n, f"<stop-{n}@c.example>")
               for n in range(6)]
    port = free_port()
    served = Served(serve_env(settings, port), port, tmp_path / "serve.log",
                    "--no-deliver")
    with served:
        with held_database(rt) as held:
            pending = [Session(port, x.mail_from, [x.rcpt], x.data)
                       for x in letters[:1]]
            assert wait_for(held.waiting)
            pending += [Session(port, x.mail_from, [x.rcpt], x.data)
                        for x in letters[1:]]
            # Every mail has reached the gateway and waits there.
            assert wait_for(lambda: _queued(port) >= len(letters))
            if how == signal.SIGKILL:
                served.kill()
            else:
                assert served.pid is not None
                os.kill(served.pid, signal.SIGTERM)
        answers = []
        for p in pending:
            try:
                answers.append(p.finish()[0])
            except (OSError, smtplib.SMTPException):
                answers.append((0, "cut off"))
        if how == signal.SIGTERM:
            assert served._ask(f"wait {served.pid}") == 0
            # Stopping finishes the mail in flight and answers it; a mail
            # that had not reached its batch yet is told to come back.
            assert {a[0] for a in answers} <= {250, 421}, answers
            assert answers[0][0] == 250, answers
        acked = {x.message_id for x, a in zip(letters, answers, strict=True)
                 if a[0] == 250}
        assert set(message_counts(rt)) >= acked
        served.start()
        tally = Tally()
        for x, a in zip(letters, answers, strict=True):
            if a[0] != 250:
                assert deliver(port, x, tally, deadline=_far()), tally
    assert message_counts(rt) == {x.message_id: 1 for x in letters}
    assert rows_of(rt)["messages"] == len(letters) + 4  # + the openings


def _queued(port: int) -> int:
    """Established connections to ``port`` whose server side has read
    everything the client sent (the mails wait in the gateway)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, queues = fields[1], fields[3], fields[4]
        if int(local.rsplit(":", 1)[1], 16) != port or state != "01":
            continue
        if int(queues.split(":")[1], 16) == 0:
            count += 1
    return count
