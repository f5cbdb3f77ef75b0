"""``casemail serve --workers 2`` with a listening socket per worker on
the shared port (SO_REUSEPORT), attacked from outside.

A second ``serve`` on the same port is refused with words that say so,
takes no connection and leaves the running one's LMTP unix socket
alone; connections the kernel queued for a worker
that is then killed are served once it is started again; the LMTP port
and the LMTP unix socket take mail in both workers, and all of them
refuse new connections promptly once the parent is told to stop.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_serve import (
    Letter,
    Served,
    customer,
    free_port,
    make_mail,
    message_counts,
    open_cases,
    reply_address,
    send_once,
    serve_command,
    serve_env,
    wait_for,
    workers_of,
)

from casemail.addresses import Party
from casemail.runtime import Runtime

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def letters(rt: Runtime, cases: list[int], label: str,
            count: int) -> list[Letter]:
    out = []
    for n in range(count):
        to = reply_address(rt, cases[n % len(cases)], Party.CUSTOMER)
        mid = f"<{label}-{n}@customer.example>"
        out.append(Letter(mid, customer(n), to, make_mail(
            sender=customer(n), to=to, subject="Re: licence",
            text=f"{label} message {n}.", message_id=mid)))
    return out


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def unix_refused(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        try:
            sock.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return True
    return False


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path: a unix socket's path must fit 108
    bytes."""
    path = Path(tempfile.mkdtemp(prefix="cmrp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def lmtp_env(rt: Runtime, port: int, lmtp_port: int,
             sock: Path) -> dict[str, str]:
    return serve_env(rt.settings, port,
                     CASEMAIL_LISTENER__LMTP_PORT=str(lmtp_port),
                     CASEMAIL_LISTENER__LMTP_SOCKET=str(sock))


def lmtp_send(where: str | int, letter: Letter) -> dict[str, tuple[int, bytes]]:
    """One LMTP transaction over TCP (a port) or a unix socket (a path);
    the recipients that were not answered 250."""
    if isinstance(where, int):
        client = smtplib.LMTP("127.0.0.1", where, timeout=30)
    else:
        client = smtplib.LMTP(where, timeout=30)
    with client:
        return client.sendmail(letter.mail_from, [letter.rcpt], letter.data)


@pytest.mark.parametrize("second", ["1", "2"])
@sqlite_only
def test_a_second_serve_on_the_port_is_refused_and_takes_no_mail(
        runtime: Runtime, tmp_path: Path, second: str) -> None:
    cases = open_cases(runtime, 2)
    port = free_port()
    env = serve_env(runtime.settings, port)
    with Served(env, port, tmp_path / "first.log", "--no-deliver",
                "--workers", "2") as first:
        assert first.pid is not None
        assert wait_for(lambda: len(workers_of(first.pid)) == 2)
        with (tmp_path / "second.log").open("wb") as log:
            other = subprocess.run(
                serve_command("--workers", second), env=env, stderr=log,
                timeout=60)
        said = (tmp_path / "second.log").read_text()
        assert other.returncode != 0, said
        assert f"cannot listen on 127.0.0.1:{port}" in said, said
        # The first one still takes every session on the port: nothing
        # was left listening beside it.
        batch = letters(runtime, cases, f"after-second-{second}", 16)
        answers = [send_once(port, letter)[0] for letter in batch]
        assert answers == [250] * len(batch), first.tail()
        assert first.terminate() == 0, first.tail()
    filed = message_counts(runtime)
    assert all(filed.get(letter.message_id) == 1 for letter in batch)


@sqlite_only
def test_connections_queued_for_a_killed_worker_are_served_after_restart(
        runtime: Runtime, tmp_path: Path) -> None:
    """The victim is stopped so that it accepts nothing; connections the
    kernel hands to its socket wait in its queue. It is killed: the
    parent still holds that socket, starts the worker again, and every
    waiting sender is greeted and has its mail filed."""
    cases = open_cases(runtime, 2)
    port = free_port()
    with Served(serve_env(runtime.settings, port), port,
                tmp_path / "serve.log", "--no-deliver",
                "--workers", "2") as server:
        assert server.pid is not None
        assert wait_for(lambda: len(workers_of(server.pid)) == 2)
        victim = min(workers_of(server.pid))
        os.kill(victim, signal.SIGSTOP)
        try:
            conns = [socket.create_connection(("127.0.0.1", port), 10)
                     for _ in range(16)]
        except BaseException:
            os.kill(victim, signal.SIGCONT)
            raise
        try:
            # The live worker greets its share at once; the victim's
            # share stays silent however long we wait.
            greeted: set[int] = set()
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                ready, _, _ = select.select(
                    [c for k, c in enumerate(conns) if k not in greeted],
                    [], [], 0.1)
                for conn in ready:
                    assert conn.recv(3) == b"220"
                    greeted.add(conns.index(conn))
            waiting = set(range(len(conns))) - greeted
            # With 16 connections over two sockets, both got some.
            assert waiting and greeted, (len(waiting), len(greeted))
            os.kill(victim, signal.SIGKILL)
            assert wait_for(lambda: len(workers_of(server.pid) - {victim})
                            == 2), server.tail()
            batch = letters(runtime, cases, "queued", len(conns))
            codes = {}
            for k, conn in enumerate(conns):
                conn.settimeout(30)
                client = smtplib.SMTP(timeout=30)
                client.sock = conn
                if k in waiting:
                    code, _ = client.getreply()
                    assert code == 220, server.tail()
                else:
                    # Its banner was read above; the rest of the line
                    # is still in the socket.
                    client.getreply()
                client.ehlo("mx.customer.example")
                letter = batch[k]
                refused_rcpts = client.sendmail(letter.mail_from,
                                                [letter.rcpt], letter.data)
                codes[k] = refused_rcpts
                client.quit()
            assert all(v == {} for v in codes.values()), codes
        finally:
            for conn in conns:
                conn.close()
        assert server.terminate() == 0, server.tail()
    filed = message_counts(runtime)
    assert [filed.get(letter.message_id) for letter in batch] == \
        [1] * len(batch)


@sqlite_only
def test_lmtp_port_and_socket_take_mail_in_both_workers_and_close_on_stop(
        runtime: Runtime, tmp_path: Path, short_dir: Path) -> None:
    cases = open_cases(runtime, 2)
    port, lmtp_port = free_port(), free_port()
    path = short_dir / "lmtp.sock"
    server = Served(lmtp_env(runtime, port, lmtp_port, path), port,
                    tmp_path / "serve.log", "--no-deliver", "--workers", "2")
    with server:
        assert server.pid is not None
        assert wait_for(lambda: len(workers_of(server.pid)) == 2)
        over_tcp = letters(runtime, cases, "lmtp-tcp", 8)
        over_unix = letters(runtime, cases, "lmtp-unix", 8)
        assert [lmtp_send(lmtp_port, x) for x in over_tcp] == [{}] * 8, \
            server.tail()
        assert [lmtp_send(str(path), x) for x in over_unix] == [{}] * 8, \
            server.tail()
        # The same mail again over the other way is filed once.
        assert lmtp_send(str(path), over_tcp[0]) == {}
        assert lmtp_send(lmtp_port, over_unix[0]) == {}

        stopped: list[int] = []
        stopper = threading.Thread(
            target=lambda: stopped.append(server.terminate()))
        stopper.start()
        assert wait_for(lambda: refused(port) and refused(lmtp_port)
                        and unix_refused(path), 10), server.tail()
        stopper.join(60)
        assert stopped == [0], server.tail()
    filed = message_counts(runtime)
    assert [filed.get(x.message_id) for x in over_tcp + over_unix] == \
        [1] * 16


@sqlite_only
def test_a_refused_second_serve_leaves_the_lmtp_socket_of_the_first(
        runtime: Runtime, tmp_path: Path, short_dir: Path) -> None:
    [case] = open_cases(runtime, 1)
    to = reply_address(runtime, case, Party.CUSTOMER)
    mails = [Letter(f"<unix-{n}@customer.example>", customer(0), to,
                    make_mail(sender=customer(0), to=to, subject="Re: key",
                              text=f"Local delivery {n}.",
                              message_id=f"<unix-{n}@customer.example>"))
             for n in range(2)]
    port = free_port()
    sock = short_dir / "lmtp.sock"
    env = serve_env(runtime.settings, port,
                    CASEMAIL_LISTENER__LMTP_SOCKET=str(sock))
    with Served(env, port, tmp_path / "first.log", "--no-deliver",
                "--workers", "2") as first:
        assert first.pid is not None
        assert wait_for(lambda: len(workers_of(first.pid)) == 2)
        assert lmtp_send(str(sock), mails[0]) == {}, first.tail()

        with (tmp_path / "second.log").open("wb") as log:
            second = subprocess.run(serve_command("--workers", "2"),
                                    env=env, stderr=log, timeout=60)
        said = (tmp_path / "second.log").read_text()
        assert second.returncode != 0, said
        assert f"cannot listen on 127.0.0.1:{port}" in said, said

        # The refused one left the running one's unix socket alone: it
        # found the port taken before it touched the socket's path.
        assert lmtp_send(str(sock), mails[1]) == {}, first.tail()
        assert first.terminate() == 0, first.tail()
    assert message_counts(runtime).get(mails[1].message_id) == 1
