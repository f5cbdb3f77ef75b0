"""A lean SMTP load client: N sessions, each sending mail after mail over
its one connection, timing end of DATA → reply.

It speaks the protocol by hand on asyncio streams (no client library in
between), because on a machine with few cores the client's own CPU is
taken from the server under test. Before the measured window, which all
sessions start together, each sends mail that is not counted: at least
one, and for ``warm_seconds`` the same load as in the window, so that
what a server does once (compile its statements and templates, fill its
caches, PostgreSQL's first statistics of fresh tables) is not measured
as if it were the cost of every mail.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from casemail.bench.mails import Template

# One numbering for the whole process: a mail sent in one cell must never
# be sent again in the next, or casemail would answer it as a duplicate
# (same bytes, same recipient) and skip the work being measured.
SEQUENCE = itertools.count(1)


class SmtpFailure(Exception):
    pass


@dataclass
class Load:
    sent: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds
    seconds: float = 0.0
    codes: dict[int, int] = field(default_factory=dict)
    # Every 250, in the window or not (warm-up, answered after it).
    accepted: int = 0


async def _reply(reader: asyncio.StreamReader) -> int:
    while True:
        line = await reader.readline()
        if not line:
            raise SmtpFailure("connection closed")
        if line[3:4] != b"-":
            return int(line[:3])


async def _command(reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter, line: bytes,
                   want: int) -> None:
    writer.write(line)
    code = await _reply(reader)
    if code != want:
        raise SmtpFailure(f"{line[:4].decode()} answered {code}")


class Session:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, limit=1 << 20)
        if await _reply(self.reader) != 220:
            raise SmtpFailure("no greeting")
        await _command(self.reader, self.writer,
                       b"EHLO client.bench.example\r\n", 250)

    async def send(self, mail: Template, seq: int) -> tuple[int, float]:
        """One transaction; its final code and end-of-DATA latency."""
        r, w = self.reader, self.writer
        await _command(r, w, f"MAIL FROM:<{mail.mail_from}>\r\n".encode(), 250)
        await _command(r, w, f"RCPT TO:<{mail.rcpt}>\r\n".encode(), 250)
        await _command(r, w, b"DATA\r\n", 354)
        w.write(mail.head_for(seq))
        w.write(mail.body)
        w.write(b".\r\n")
        await w.drain()
        started = time.perf_counter()
        code = await _reply(r)
        return code, time.perf_counter() - started

    async def close(self) -> None:
        try:
            self.writer.write(b"QUIT\r\n")
            await _reply(self.reader)
        except (OSError, SmtpFailure):
            pass
        self.writer.close()


async def run_load(port: int, mails: list[Template], *, sessions: int,
                   seconds: float, max_messages: int | None = None,
                   on_start: Callable[[], None] | None = None,
                   on_stop: Callable[[], None] | None = None,
                   warm_up: bool = True, warm_seconds: float = 0.0,
                   host: str = "127.0.0.1") -> Load:
    """Send for ``seconds`` (or until ``max_messages``) over ``sessions``
    connections; ``on_start`` and ``on_stop`` run as the measured
    window opens and closes."""
    load = Load()
    seqs = SEQUENCE
    picks = itertools.cycle(mails)
    go, stop = asyncio.Event(), asyncio.Event()
    opened = [Session(host, port) for _ in range(sessions)]

    warm_until = time.perf_counter() + warm_seconds

    async def warm(session: Session) -> None:
        await session.open()
        while warm_up:
            code, _ = await session.send(next(picks), next(seqs))
            load.accepted += code == 250
            if time.perf_counter() >= warm_until:
                break

    async def work(session: Session) -> None:
        await go.wait()
        while not stop.is_set():
            code, latency = await session.send(next(picks), next(seqs))
            load.accepted += code == 250
            if stop.is_set():
                break  # finished after the window closed: not counted
            load.codes[code] = load.codes.get(code, 0) + 1
            if code == 250:
                load.sent += 1
                load.latencies.append(latency)
            else:
                load.failed += 1
            if max_messages and load.sent + load.failed >= max_messages:
                stop.set()

    await asyncio.gather(*(warm(s) for s in opened))
    tasks = [asyncio.create_task(work(s)) for s in opened]
    if on_start is not None:
        on_start()
    started = time.perf_counter()
    go.set()
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        stop.set()
    load.seconds = time.perf_counter() - started
    if on_stop is not None:
        on_stop()
    await asyncio.gather(*tasks)
    await asyncio.gather(*(s.close() for s in opened))
    return load
