"""What the durability tests share: a PostgreSQL schema of their own,
cases to write to, mail to send, a real SMTP client that retries like a
sending server does, and ``casemail serve`` as a child process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import smtplib
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import Engine, event, func, select

from casemail.addresses import Party
from casemail.cases.content import Content
from casemail.config import Settings
from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.runtime import Runtime

MERCHANT = "desk@nordlicht-audio.example"
# Times the gateway applies a quarantined mail by itself (the settings'
# max_processing_attempts in these tests).
MAX_ATTEMPTS = 3
# How long a child process may take to start, or to stop after SIGTERM.
START_TIMEOUT = 20.0


@contextmanager
def statements_sent(engine: Engine) -> Iterator[list[str]]:
    """Every statement the engine sends meanwhile, each on one line."""
    sent: list[str] = []

    def seen(conn, cursor, statement, params, context, many):  # type: ignore[no-untyped-def]
        sent.append(" ".join(statement.split()))
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- cases ---------------------------------------------------------------


def open_cases(rt: Runtime, count: int) -> list[int]:
    """A store with its team, and ``count`` cases opened in it."""
    with transaction(rt.sessions) as s:
        store = m.Store(slug="nordlicht", name="Nordlicht Audio",
                        sender_address="help@nordlicht-audio.example",
                        created_at=rt.clock.now())
        store.members.append(m.TeamMember(address=MERCHANT, name="Desk"))
        s.add(store)
    ids = []
    for n in range(count):
        with transaction(rt.sessions) as s:
            case = rt.service.open_case(
                s, store_slug="nordlicht", order_ref=f"NA-{7000 + n}",
                customer_address=customer(n), customer_name=f"Kim {n}",
                subject=f"Plugin licence {n} not activating",
                content=Content.typed("It says the key is invalid.",
                                      source="api"))
            ids.append(case.id)
    return ids


def customer(n: int) -> str:
    return f"kim.{n}@customer.example"


def reply_address(rt: Runtime, case_id: int, party: Party) -> str:
    return rt.signer.reply_address(case_id, party)


def make_mail(*, sender: str, to: str, subject: str, text: str,
              message_id: str = "", png: str = "") -> bytes:
    """A plain reply; without ``message_id`` it has none; with ``png``
    it carries a small real PNG of that name."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    if message_id:
        msg["Message-ID"] = message_id
    msg["Date"] = "Mon, 02 Mar 2026 10:00:00 +0000"
    msg.set_content(text)
    if png:
        msg.add_attachment(tiny_png(), maintype="image", subtype="png",
                           filename=png)
    return msg.as_bytes().replace(b"\n", b"\r\n")


def tiny_png() -> bytes:
    """A 2x2 PNG, made here: signature, IHDR, IDAT, IEND."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    rows = b"\x00" + b"\xff\x00\x00" * 2 + b"\x00" + b"\x00\xff\x00" * 2
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@dataclass
class Letter:
    """One mail and where it goes: what a sending server has queued."""

    message_id: str
    mail_from: str
    rcpt: str
    data: bytes


def count_by(rt: Runtime, column: object) -> dict[str, int]:
    with rt.sessions() as s:
        return {k: n for k, n in s.execute(
            select(column, func.count()).group_by(column))}


def message_counts(rt: Runtime) -> dict[str, int]:
    """Messages filed from mail, by Message-ID."""
    with rt.sessions() as s:
        return {k: n for k, n in s.execute(
            select(m.Message.message_id, func.count())
            .where(m.Message.source == "email")
            .group_by(m.Message.message_id))}


# -- sending like a mail server ----------------------------------------------


@dataclass
class Tally:
    acked: int = 0
    attempts: int = 0
    retried: int = 0  # attempts that ended without an answer or with 4xx
    duplicates: int = 0  # 250 "already filed": kept before, ack was lost
    refusals: list[str] = field(default_factory=list)


def send_once(port: int, letter: Letter, timeout: float = 10.0
              ) -> tuple[int, str]:
    """One SMTP transaction; the DATA reply, or raise when cut off."""
    with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as smtp:
        smtp.ehlo("mx.customer.example")
        code, reply = smtp.mail(letter.mail_from)
        if code != 250:
            return code, reply.decode()
        code, reply = smtp.rcpt(letter.rcpt)
        if code != 250:
            return code, reply.decode()
        code, reply = smtp.data(letter.data)
        return code, reply.decode()


def deliver(port: int, letter: Letter, tally: Tally, *,
            deadline: float) -> bool:
    """Send until the answer is 250, as a sending server retries a
    temporary failure (RFC 5321 4.5.4.1); False if 5xx or out of time."""
    while time.monotonic() < deadline:
        tally.attempts += 1
        try:
            code, reply = send_once(port, letter)
        except (OSError, smtplib.SMTPException):
            code, reply = 0, "cut off"
        if code == 250:
            tally.acked += 1
            tally.duplicates += "already filed" in reply
            return True
        if 500 <= code < 600:
            tally.refusals.append(f"{letter.message_id}: {code} {reply}")
            return False
        tally.retried += 1
        time.sleep(0.05)  # a retry interval, much shortened
    return False


# -- casemail serve as a child process -------------------------------------------


def serve_env(settings: Settings, port: int, *, relay_port: int = 1,
              **extra: str) -> dict[str, str]:
    """The environment of a child casemail sharing ``settings``' database,
    data directory and signing keys."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CASEMAIL_")}
    env.update({
        "CASEMAIL_DATA_DIR": str(settings.data_dir),
        "CASEMAIL_DATABASE_URL": settings.db_url,
        "CASEMAIL_SIGNING_KEYS": json.dumps(settings.signing_keys),
        "CASEMAIL_MAX_PROCESSING_ATTEMPTS":
            str(settings.max_processing_attempts),
        "CASEMAIL_LISTENER__PORT": str(port),
        "CASEMAIL_RELAY__PORT": str(relay_port),
        "CASEMAIL_RELAY__POLL_INTERVAL": "0.1",
        "CASEMAIL_RELAY__RETRY_BASE": "0.2",
        "CASEMAIL_RELAY__RETRY_MAX": "0.5",
        "CASEMAIL_BUDGET__PER_CASE_RECIPIENT": "100000",
        "CASEMAIL_BUDGET__PER_RECIPIENT": "100000",
        "CASEMAIL_LOG_LEVEL": "WARNING",
    })
    env.update(extra)
    return env


# ``casemail serve``'s own code, run in children forked from one process
# that imported it once: a restart then costs the start-up of the command,
# not the imports (seconds on a busy machine, and the crash test restarts
# twenty times). The launcher reaps its children and reports how they
# ended, as a shell would.
LAUNCHER = """
import os, sys
from casemail.cli import main as cli
import casemail.config, casemail.gateway, casemail.runtime
cli.build_parser()
for line in sys.stdin:
    word, *rest = line.split()
    if word == "serve":
        pid = os.fork()
        if pid == 0:
            os._exit(cli.main(["serve", *rest]))
        print(pid, flush=True)
    else:
        _, status = os.waitpid(int(rest[0]), 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
"""


class Served:
    """``casemail serve`` in a child process, on a known port."""

    def __init__(self, env: dict[str, str], port: int, log: Path,
                 *args: str) -> None:
        self.env, self.port, self.log = env, port, log
        self.args = ["--no-sweep", *args]
        self.pid: int | None = None
        self.starts = 0
        self._launcher: subprocess.Popen[str] | None = None

    def _ask(self, line: str) -> int:
        if self._launcher is None:
            with self.log.open("ab") as out:
                self._launcher = subprocess.Popen(
                    [sys.executable, "-c", LAUNCHER], env=self.env,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=out, text=True)
        assert self._launcher.stdin and self._launcher.stdout
        self._launcher.stdin.write(line + "\n")
        self._launcher.stdin.flush()
        answer = self._launcher.stdout.readline()
        if not answer:
            raise AssertionError(f"launcher died: {self.tail()}")
        return int(answer)

    def start(self) -> None:
        self.pid = self._ask(" ".join(["serve", *self.args]))
        self.starts += 1
        self.wait_listening()

    def alive(self) -> bool:
        assert self.pid is not None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        # A zombie still answers signal 0; its state says it has ended.
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    def wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"casemail serve ended: {self.tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.02)  # polling a port that is not open yet
        raise AssertionError(f"casemail serve did not listen: {self.tail()}")

    def kill(self) -> int:
        assert self.pid is not None
        os.kill(self.pid, signal.SIGKILL)
        return self._ask(f"wait {self.pid}")

    def terminate(self) -> int:
        """SIGTERM, and the exit code once it has stopped."""
        assert self.pid is not None
        os.kill(self.pid, signal.SIGTERM)
        return self._ask(f"wait {self.pid}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def __enter__(self) -> Served:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pid is not None and self.alive():
            self.kill()
        if self._launcher is not None:
            self._launcher.stdin.close()  # type: ignore[union-attr]
            self._launcher.wait(START_TIMEOUT)
            self._launcher.stdout.close()  # type: ignore[union-attr]


def workers_of(pid: int) -> set[int]:
    """The live child processes of ``pid``."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    alive = set()
    for child in map(int, children):
        try:
            state = Path(f"/proc/{child}/stat").read_text()
        except FileNotFoundError:
            continue
        if state.rsplit(")", 1)[1].split()[0] != "Z":
            alive.add(child)
    return alive


def wait_for(check: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.05)  # polling processes we do not own the events of
    return False


@contextmanager
def two_workers(runtime: Runtime, tmp_path: Path
                ) -> Iterator[tuple[Served, int]]:
    """``casemail serve --workers 2`` on a port of its own, once both
    workers run; stopped (if still running) on the way out."""
    port = free_port()
    server = Served(serve_env(runtime.settings, port), port,
                    tmp_path / "serve.log", "--no-deliver", "--workers", "2")
    with server:
        assert server.pid is not None
        assert wait_for(lambda: len(workers_of(server.pid)) == 2), \
            server.tail()
        yield server, port


@contextmanager
def gateway_thread(rt: Runtime, *, sweep: bool = False) -> Iterator[int]:
    """A gateway (listener only, or with the sweep and its housekeeping)
    in its own event loop; its SMTP port."""
    from casemail.gateway import Gateway

    loop = asyncio.new_event_loop()
    gateway = Gateway(rt, deliver=False, sweep=sweep)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(gateway.start(), loop).result(10)
    try:
        yield gateway.smtp_port
    finally:
        asyncio.run_coroutine_threadsafe(gateway.stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
