"""What the hostile tests of the gateway share: the durability kit
(cases, mail, senders, ``casemail serve`` as a child process), the
end-to-end tests' gateway in a thread, a look at the child's worker
processes and their sockets through /proc, a sender that stops halfway,
and a way to keep the database busy so that a mail stays in flight for
as long as a test needs.

Kept out of conftest so test modules can import it by name.
"""

from __future__ import annotations

import os
import smtplib
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

for _kit in ("durability", "e2e"):
    _path = str(Path(__file__).resolve().parents[1] / _kit)
    if _path not in sys.path:
        sys.path.insert(0, _path)

from durability_kit import (  # noqa: E402
    Letter,
    Served,
    Tally,
    count_by,
    customer,
    deliver,
    free_port,
    make_mail,
    message_counts,
    open_cases,
    reply_address,
    send_once,
    serve_env,
    tiny_png,
    two_workers,
)
from e2e_gateway import GatewayThread  # noqa: E402

from casemail.db import models as m  # noqa: E402
from casemail.runtime import Runtime  # noqa: E402

__all__ = [
    "GatewayThread", "Letter", "Pending", "Served", "Tally", "count_by",
    "customer", "deliver", "free_port", "gateway_port", "held_database",
    "listening", "listening_in", "make_mail", "message_counts",
    "open_cases", "owner_of", "reply_address", "rows_of", "send_once",
    "serve_command", "serve_env", "start_serve", "tiny_png", "two_workers",
    "wait_for", "workers_of",
]

# How long a test waits for something another process does before it
# gives up (and fails): never a measure of speed.
PATIENCE = 20.0


def wait_for(check: Callable[[], object], timeout: float = PATIENCE) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)  # polling processes whose events we cannot see
    return False


# -- processes and sockets, as /proc shows them ---------------------------------


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def workers_of(pid: int) -> set[int]:
    """The live child processes of ``pid``."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return set()
    return {int(c) for c in children.split() if _alive(int(c))}


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return found
    for fd in fds:
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            found.add(link[8:-1])
    return found


def _tcp_inodes(local_port: int, *, remote_port: int | None = None,
                listening: bool = False) -> set[str]:
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], \
            fields[9]
        if int(local.rsplit(":", 1)[1], 16) != local_port:
            continue
        if listening and state != "0A":
            continue
        if remote_port is not None and \
                int(remote.rsplit(":", 1)[1], 16) != remote_port:
            continue
        found.add(inode)
    return found


def owner_of(client: smtplib.SMTP, port: int, pids: set[int]) -> int | None:
    """Which of ``pids`` serves the connection of ``client``."""
    assert client.sock is not None
    mine = client.sock.getsockname()[1]
    inodes = _tcp_inodes(port, remote_port=mine)
    for pid in pids:
        if _socket_inodes(pid) & inodes:
            return pid
    return None


def listening_in(port: int, pids: set[int]) -> set[int]:
    """Those of ``pids`` that still hold the listening socket of ``port``
    (a worker that began to stop has closed its own)."""
    inodes = _tcp_inodes(port, listening=True)
    return {pid for pid in pids if _socket_inodes(pid) & inodes}


@contextmanager
def gateway_port(rt: Runtime) -> Iterator[int]:
    """A gateway (listener only) in a thread of its own; its SMTP port."""
    gateway = GatewayThread(rt).start()
    try:
        yield gateway.port
    finally:
        gateway.stop()


# -- casemail serve, started as an operator starts it ---------------------------

SERVE = ("import sys; from casemail.cli.main import main; "
         "sys.exit(main(sys.argv[1:]))")


def serve_command(*args: str) -> list[str]:
    """``casemail serve`` (listener only) with ``args``."""
    return [sys.executable, "-c", SERVE, "serve", "--no-deliver",
            "--no-sweep", *args]


def start_serve(env: dict[str, str], log: Path,
                *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(serve_command(*args), env=env, stderr=out)


def listening(proc: subprocess.Popen[bytes], port: int) -> bool:
    """Whether ``proc`` came to listen on ``port`` (False once it ended)."""
    def up() -> bool:
        if proc.poll() is not None:
            return True
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
        except OSError:
            return False
        return True
    return wait_for(up) and proc.poll() is None


# -- a sender that stops where the test says ------------------------------------


class Pending:
    """One SMTP transaction, sent up to a point and answered later.

    ``whole``: all the data and the final dot, the answer not yet read;
    otherwise half the data, the rest sent by ``finish``."""

    def __init__(self, port: int, letter: Letter, *, whole: bool) -> None:
        self.letter = letter
        self.client = smtplib.SMTP("127.0.0.1", port, timeout=30)
        self.client.ehlo("mx.customer.example")
        assert self.client.mail(letter.mail_from)[0] == 250
        assert self.client.rcpt(letter.rcpt)[0] == 250
        self.client.putcmd("data")
        assert self.client.getreply()[0] == 354
        self._half = len(letter.data) // 2
        if whole:
            self.client.send(letter.data + b".\r\n")
        else:
            self.client.send(letter.data[:self._half])
        self.whole = whole

    def finish(self) -> tuple[int, str]:
        """Whatever answer comes; (0, reason) when there is none."""
        try:
            if not self.whole:
                self.client.send(self.letter.data[self._half:] + b".\r\n")
            code, reply = self.client.getreply()
            return code, reply.decode()
        except (OSError, smtplib.SMTPException) as exc:
            return 0, f"cut off: {type(exc).__name__}"
        finally:
            self.client.close()


# -- keeping the database busy ---------------------------------------------------


class _Held:
    def __init__(self, waiting: Callable[[], bool]) -> None:
        self.waiting = waiting


@contextmanager
def held_database(rt: Runtime) -> Iterator[_Held]:
    """Hold the database the way a long writer would, so that a mail
    that reaches it waits there, in flight; ``waiting()`` says whether
    some mail does.

    SQLite: a transaction of ours holds its write lock; the worker that
    waits for it holds the writer lock file meanwhile. PostgreSQL: every
    case row is locked FOR UPDATE, which the filing of a reply waits for.
    """
    url = rt.settings.db_url
    if url.startswith("sqlite"):
        path = rt.engine.url.database
        assert path
        lock_file = Path(f"{path}-writer.lock")
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")

        def waiting() -> bool:
            # The writer lock file is held by a worker, which is then
            # waiting for our transaction.
            if not lock_file.exists():
                return False
            st = os.stat(lock_file)
            me = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:" \
                 f"{st.st_ino}"
            for line in Path("/proc/locks").read_text().splitlines():
                if "->" not in line and "FLOCK" in line and me in line:
                    return True
            return False
        try:
            yield _Held(waiting)
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT id FROM cases FOR UPDATE"))
            me = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()

            def pg_waiting() -> bool:
                return bool(conn.execute(text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE :me = ANY(pg_blocking_pids(pid))"),
                    {"me": me}).scalar_one())
            try:
                yield _Held(pg_waiting)
            finally:
                conn.rollback()
    finally:
        engine.dispose()


# -- what the database holds ---------------------------------------------------


def rows_of(rt: Runtime) -> dict[str, int]:
    """How many rows each table that filing writes to holds."""
    with rt.sessions() as s:
        return {model.__tablename__: s.scalar(
            select(func.count()).select_from(model))
            for model in (m.RawMail, m.Message, m.Attachment, m.Event,
                          m.Outbox)}
