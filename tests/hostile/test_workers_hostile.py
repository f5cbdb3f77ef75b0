"""``casemail serve --workers N`` treated roughly: a worker killed with a
mail in flight, SIGTERM to the parent with one mail being filed and one
half sent, many sessions across workers while other writers use the same
database, two ``serve`` processes on one SQLite file, workers that
cannot start, a parent killed outright, and a writer lock file that
cannot be opened.

What must hold throughout: a mail answered 250 is filed exactly once; a
mail not answered 250 left nothing behind and is filed once when the
sender tries again; no fault of ours surfaces as a 5xx, nor as a 4xx
while the database can take the mail.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest
from hostile_serve import (
    Letter,
    Pending,
    Served,
    count_by,
    customer,
    free_port,
    held_database,
    listening,
    listening_in,
    make_mail,
    message_counts,
    open_cases,
    owner_of,
    reply_address,
    rows_of,
    send_once,
    serve_command,
    serve_env,
    start_serve,
    two_workers,
    wait_for,
    workers_of,
)
from sqlalchemy import func, select

from casemail.addresses import Party
from casemail.cases.content import Content
from casemail.config import Settings, load_settings
from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.outbound.sink import MaildirSink
from casemail.runtime import Runtime

MERCHANT = "desk@nordlicht-audio.example"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return load_settings(
        None, data_dir=tmp_path / "var", database_url=db_url,
        signing_keys={"1": "hostile-workers-key-0123456789abc"},
        max_processing_attempts=3,
        listener={"host": "127.0.0.1", "port": 0})


def letter(rt: Runtime, case: int, n: int, label: str, *,
           text: str = "") -> Letter:
    to = reply_address(rt, case, Party.CUSTOMER)
    mid = f"<{label}-{n}@customer.example>"
    return Letter(mid, customer(n), to, make_mail(
        sender=customer(n), to=to, subject="Re: licence",
        text=text or f"{label} {n}: the key is still refused.",
        message_id=mid))


def assert_filed_whole(rt: Runtime, letters: list[Letter]) -> None:
    """Each letter is one raw mail, filed, with one message that has its
    timeline entry and its notification."""
    filed = message_counts(rt)
    for item in letters:
        assert filed.get(item.message_id) == 1, item.message_id
    with rt.sessions() as s:
        assert set(s.scalars(select(m.RawMail.status))) <= {"filed"}
        for item in letters:
            message = s.scalars(select(m.Message).where(
                m.Message.message_id == item.message_id)).one()
            assert message.raw_mail_id is not None
            events = s.scalar(select(func.count()).select_from(m.Event)
                              .where(m.Event.message_id == message.id,
                                     m.Event.kind == "message"))
            assert events == 1, item.message_id
        notices = s.scalar(select(func.count()).select_from(m.Outbox).where(
            m.Outbox.template == "customer_reply"))
        email = s.scalar(select(func.count()).select_from(m.Message).where(
            m.Message.source == "email"))
    assert notices == email


def run_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)


def stop_once_sent(rt: Runtime, servers: list[Served]) -> list[int]:
    """Wait until every notification went out, then stop the servers;
    their exit codes."""
    assert wait_for(lambda: set(count_by(rt, m.Outbox.status)) == {"sent"}),\
        count_by(rt, m.Outbox.status)
    return [server.terminate() for server in servers]


def assert_relayed_once(rt: Runtime, sink: MaildirSink) -> None:
    """The relay got every notification of the outbox, each once."""
    received = Counter(msg["Message-ID"] for msg in sink.messages())
    with rt.sessions() as s:
        sent = list(s.scalars(select(m.Outbox.message_id)))
    assert received == Counter(sent)
    assert set(received.values()) == {1}


def test_mail_in_flight_survives_a_killed_worker_and_a_stopped_parent(
        runtime: Runtime, db_url: str, tmp_path: Path) -> None:
    """The database is held so that a mail waits in a worker, in flight.

    SIGKILL to that worker: the sender hears nothing, nothing is kept, a
    new worker comes, and the retry is filed once. SIGTERM to the parent
    with one mail waiting and one half sent: the waiting one is answered
    250 once the database is free, the half-sent one is not, the parent
    exits 0, and after a restart the half-sent one is filed once."""
    cases = open_cases(runtime, 2)
    first, second, third = (letter(runtime, cases[n % 2], n, "inflight")
                            for n in range(3))
    with two_workers(runtime, tmp_path) as (server, port):
        assert server.pid is not None
        before = rows_of(runtime)

        # A worker dies with the mail it is filing.
        with held_database(runtime) as held:
            pending = Pending(port, first, whole=True)
            assert wait_for(held.waiting), server.tail()
            workers = workers_of(server.pid)
            victim = owner_of(pending.client, port, workers)
            assert victim is not None
            os.kill(victim, signal.SIGKILL)
            code, _ = pending.finish()
        assert code == 0  # no answer: the sender keeps the mail
        assert rows_of(runtime) == before
        assert wait_for(lambda: len(workers_of(server.pid) - {victim}) == 2)
        assert send_once(port, first) == (250, "2.0.0 Message filed")

        # The parent is told to stop while one mail waits and one is
        # half sent.
        with held_database(runtime) as held:
            waiting = Pending(port, second, whole=True)
            assert wait_for(held.waiting), server.tail()
            half = Pending(port, third, whole=False)
            workers = workers_of(server.pid)
            stopped: list[int] = []
            stopper = threading.Thread(
                target=lambda: stopped.append(server.terminate()))
            stopper.start()
            # Every worker has begun to stop: none takes new sessions.
            assert wait_for(lambda: not listening_in(port, workers)), \
                server.tail()
            # Nor does the parent hold the port open: a new sender is
            # refused at once, not left waiting in the accept queue.
            assert wait_for(lambda: refused(port)), server.tail()
        assert waiting.finish() == (250, "2.0.0 Message filed")
        assert half.finish()[0] != 250
        stopper.join(60)
        assert stopped == [0], server.tail()
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
        assert message_counts(runtime).get(third.message_id) is None

        # Started again: the sender's retry of the half-sent mail is
        # filed, the mail answered before is recognised.
        server.start()
        assert send_once(port, third) == (250, "2.0.0 Message filed")
        assert send_once(port, second) == (250,
                                           "2.0.0 Message already filed")
        assert server.terminate() == 0, server.tail()
    assert_filed_whole(runtime, [first, second, third])
    assert len(count_by(runtime, m.RawMail.idem_key)) == 3


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


SENDERS = 10
EACH = 4
SERVICE_WRITES = 15


def test_many_sessions_across_workers_beside_other_writers(
        runtime: Runtime, db_url: str, tmp_path: Path) -> None:
    """Three workers, ten senders at once (one mail in eight large
    enough to be written into SQLite in pieces), while this process
    writes merchant replies to the same cases as ``casemail case reply``
    does and the first worker delivers: every mail is answered 250 the
    first time and filed once, every reply is kept, and every
    notification reaches the relay once."""
    cases = open_cases(runtime, 6)
    bulk = "\n".join(f"log line {n:06d} " + "x" * 60 for n in range(4000))
    letters = [letter(runtime, cases[n % 6], n, "many",
                      text=bulk if n % 8 == 0 else "")
               for n in range(SENDERS * EACH)]
    answers: dict[str, str] = {}
    failures: list[str] = []
    lock = threading.Lock()

    def send(mine: list[Letter]) -> None:
        for item in mine:
            try:
                code, reply = send_once(port, item, timeout=60)
                answer = f"{code} {reply}"
            except Exception as exc:  # noqa: BLE001 - reported below
                answer = f"cut off: {exc!r}"
            with lock:
                answers[item.message_id] = answer

    def write_replies() -> None:
        for n in range(SERVICE_WRITES):
            try:
                with transaction(runtime.sessions) as s:
                    case = runtime.service.lock_case(s, cases[n % 6])
                    runtime.service.add_message(
                        s, case, party=Party.MERCHANT, author_address=MERCHANT,
                        content=Content.typed(f"Reply {n}: try this key.",
                                              source="cli"))
            except Exception as exc:  # noqa: BLE001 - reported below
                failures.append(repr(exc))

    port = free_port()
    with MaildirSink(tmp_path / "relay") as sink:
        server = Served(serve_env(runtime.settings, port,
                                  relay_port=sink.port),
                        port, tmp_path / "serve.log", "--workers", "3")
        with server:
            threads = [threading.Thread(target=send,
                                        args=(letters[k::SENDERS],))
                       for k in range(SENDERS)]
            threads.append(threading.Thread(target=write_replies))
            run_all(threads)
            assert stop_once_sent(runtime, [server]) == [0], server.tail()
        assert_relayed_once(runtime, sink)

    assert not failures
    odd = {k: v for k, v in answers.items()
           if v != "250 2.0.0 Message filed"}
    assert not odd, odd
    assert len(answers) == len(letters)
    assert_filed_whole(runtime, letters)
    with runtime.sessions() as s:
        replies = s.scalar(select(func.count()).select_from(m.Message)
                           .where(m.Message.source == "cli"))
    assert replies == SERVICE_WRITES


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_two_serve_processes_on_one_sqlite_file(
        runtime: Runtime, db_url: str, tmp_path: Path) -> None:
    """Two separate ``casemail serve --workers 2`` on one SQLite file,
    each mail delivered to both at the same moment (a redelivery racing
    itself), both delivering: each mail is filed once, and each
    notification reaches the relay once."""
    cases = open_cases(runtime, 4)
    letters = [letter(runtime, cases[n % 4], n, "twice") for n in range(32)]
    ports = [free_port(), free_port()]
    answers: Counter[str] = Counter()
    lock = threading.Lock()

    def send(mine: list[Letter]) -> None:
        for item in mine:
            got: list[str] = []
            both = [threading.Thread(target=lambda p=p: got.append(
                " ".join(map(str, send_once(p, item, timeout=60)))))
                for p in ports]
            for thread in both:
                thread.start()
            for thread in both:
                thread.join(60)
            with lock:
                answers.update(got)

    with MaildirSink(tmp_path / "relay") as sink:
        servers = [Served(serve_env(runtime.settings, port,
                                    relay_port=sink.port),
                          port, tmp_path / f"serve-{port}.log",
                          "--workers", "2") for port in ports]
        with servers[0], servers[1]:
            run_all([threading.Thread(target=send, args=(letters[k::6],))
                     for k in range(6)])
            codes = stop_once_sent(runtime, servers)
        assert_relayed_once(runtime, sink)

    assert codes == [0, 0], [s.tail() for s in servers]
    assert answers == {"250 2.0.0 Message filed": len(letters),
                       "250 2.0.0 Message already filed": len(letters)}
    assert_filed_whole(runtime, letters)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_workers_that_cannot_start_stop_the_service_and_say_why(
        runtime: Runtime, db_url: str, tmp_path: Path) -> None:
    """A certificate that is not there fails in every worker, after the
    parent has bound the port: the command exits 1 and says why in a
    line naming the file, no worker is left, and the port is free
    again."""
    port = free_port()
    missing = tmp_path / "missing-cert.pem"
    env = serve_env(runtime.settings, port,
                    CASEMAIL_LISTENER__TLS_CERT=str(missing),
                    CASEMAIL_LISTENER__TLS_KEY=str(tmp_path / "missing.key"))
    done = subprocess.run(serve_command("--workers", "2"), env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"cannot load TLS certificate {missing}" in done.stderr
    # Said as 'serve' without workers says it: a line, not a traceback.
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # nothing holds it any more


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_unusable_writer_lock_is_not_hidden_in_the_quarantine(
        runtime: Runtime, db_url: str, tmp_path: Path) -> None:
    """The writer lock file beside the SQLite database cannot be opened
    (here a directory stands in its place; in the field, the file left
    mode 0600 and owned by root after someone ran ``casemail serve`` or
    ``casemail reprocess`` as root, the service running as its own
    user), while the database itself can be read and written.

    ``casemail serve`` refuses to start, naming the lock file; it never
    answers 250 and quarantines every mail with the lock's error, where
    each retry would fail the same way until the mail waits for a
    person. (Inside a running gateway the same fault is answered 4xx:
    ``Pipeline.process_batch``.)"""
    [case] = open_cases(runtime, 1)
    path = runtime.engine.url.database
    assert path
    Path(f"{path}-writer.lock").mkdir()
    to = reply_address(runtime, case, Party.CUSTOMER)
    mid = "<lock-1@customer.example>"
    item = Letter(mid, customer(0), to, make_mail(
        sender=customer(0), to=to, subject="Re: licence",
        text="Still no key.", message_id=mid))
    port = free_port()
    log = tmp_path / "serve.log"
    proc = start_serve(serve_env(runtime.settings, port), log)
    try:
        started = listening(proc, port)
        if started:
            code, reply = send_once(port, item)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert not started, f"served anyway: {code} {reply}"
    assert proc.returncode == 1
    assert "cannot open the SQLite writer lock" in log.read_text()
    assert rows_of(runtime)["raw_mails"] == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_workers_do_not_outlive_a_killed_parent(
        runtime: Runtime, db_url: str, tmp_path: Path) -> None:
    """SIGKILL to the parent of ``casemail serve --workers 2`` (the pid
    an operator knows; the kernel's OOM killer may pick it too): the
    workers stop with it, as one process would, instead of serving on
    unsupervised and holding the port against the next ``serve``."""
    port = free_port()
    env = serve_env(runtime.settings, port)
    proc = start_serve(env, tmp_path / "serve.log", "--workers", "2")
    workers: set[int] = set()
    said = ""
    try:
        assert listening(proc, port)
        assert wait_for(lambda: len(workers_of(proc.pid)) == 2)
        workers = workers_of(proc.pid)
        proc.kill()
        proc.wait(30)
        gone = wait_for(lambda: not any(
            Path(f"/proc/{pid}").exists() for pid in workers))
        if not gone:
            again = subprocess.run(serve_command(), env=env,
                                   capture_output=True, text=True, timeout=30)
            said = f"exit {again.returncode}: {again.stderr.strip()}"
    finally:
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert gone, f"workers outlived their parent; a new serve: {said}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # nothing holds it any more
