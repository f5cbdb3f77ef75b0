"""``casemail serve --workers 2``: two processes on one listening port.

Mail sent over eight connections at once is filed once each; a burst of
sessions is spread over both workers; a worker
that dies is started again and the socket keeps answering; SIGTERM to
the parent stops every worker and exits 0. On SQLite this is also the
test that two processes take turns to write without losing a mail.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from durability_kit import (
    Letter,
    customer,
    make_mail,
    message_counts,
    open_cases,
    reply_address,
    send_once,
    two_workers,
    wait_for,
    workers_of,
)

from casemail.addresses import Party
from casemail.runtime import Runtime

SENDERS = 8
EACH = 10


def letters_for(rt: Runtime, cases: list[int], label: str,
                count: int) -> list[Letter]:
    letters = []
    for n in range(count):
        case = cases[n % len(cases)]
        to = reply_address(rt, case, Party.CUSTOMER)
        mid = f"<{label}-{n}@customer.example>"
        sender = customer(n % len(cases))
        letters.append(Letter(mid, sender, to, make_mail(
            sender=sender, to=to, subject="Re: licence",
            text=f"Message {n}.", message_id=mid)))
    return letters


def send_all(port: int, letters: list[Letter]) -> dict[str, int]:
    answers: dict[str, int] = {}
    lock = threading.Lock()

    def send(mine: list[Letter]) -> None:
        for letter in mine:
            code, _ = send_once(port, letter)
            with lock:
                answers[letter.message_id] = code

    threads = [threading.Thread(target=send, args=(letters[k::SENDERS],))
               for k in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def test_two_workers_file_every_mail_once_and_survive_a_dead_worker(
        runtime: Runtime, db_url: str, tmp_path: Path) -> None:
    cases = open_cases(runtime, 4)
    with two_workers(runtime, tmp_path) as (server, port):
        assert server.pid is not None
        first = letters_for(runtime, cases, "both", SENDERS * EACH)
        answers = send_all(port, first)
        assert set(answers.values()) == {250}, server.tail()
        assert len(answers) == len(first)

        # One worker dies: the other keeps answering, and a new one comes.
        before = workers_of(server.pid)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: len(workers_of(server.pid) - {victim}) == 2),\
            server.tail()
        again = letters_for(runtime, cases, "after", SENDERS)
        assert set(send_all(port, again).values()) == {250}, server.tail()

        workers = workers_of(server.pid)
        code = server.terminate()
    assert code == 0, server.tail()
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    filed = message_counts(runtime)
    for letter in first + again:
        assert filed.get(letter.message_id) == 1, letter.message_id


def test_workers_that_fail_at_start_are_not_started_again() -> None:
    """A worker that cannot start (a bad setting, the database away)
    would only fail again: the parent stops the others and exits 1
    instead of restarting it for ever."""
    program = ("import sys\n"
               "from casemail.workers import run_workers\n"
               "sys.exit(run_workers(2, lambda n: 3))\n")
    done = subprocess.run([sys.executable, "-c", program], timeout=30,
                          capture_output=True, text=True)
    assert done.returncode == 1, done.stderr


def sessions_in(pid: int, port: int) -> int:
    """How many established connections to ``port`` ``pid`` holds."""
    mine = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except FileNotFoundError:  # closed while we looked
            continue
        if link.startswith("socket:["):
            mine.add(link[8:-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == "01" and fields[9] in mine:
            count += 1
    return count


def test_a_burst_of_sessions_is_spread_over_the_workers(
        runtime: Runtime, tmp_path: Path) -> None:
    # A mail server opens its sessions in a burst. The burst arrives
    # while no worker runs, so that whichever would wake first could
    # take every waiting connection for itself; each must get a share.
    with two_workers(runtime, tmp_path) as (server, port):
        assert server.pid is not None
        workers = sorted(workers_of(server.pid))
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            burst = [socket.create_connection(("127.0.0.1", port), 5)
                     for _ in range(16)]
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
        try:
            def taken() -> dict[int, int]:
                return {pid: sessions_in(pid, port) for pid in workers}
            assert wait_for(lambda: sum(taken().values()) >= 16), taken()
            for conn in burst:  # every session is greeted
                assert conn.recv(3) == b"220"
            assert all(n > 0 for n in taken().values()), taken()
        finally:
            for conn in burst:
                conn.close()
        assert server.terminate() == 0, server.tail()
