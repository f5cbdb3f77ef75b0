"""The servers under test, each run in a process of its own.

    python -m casemail.bench.server KIND

prints ``PORT <n>`` once it listens and serves until SIGTERM, so the
benchmark reads that process's CPU time and peak memory and nobody
else's. KIND is one of:

    ceiling   bare aiosmtpd, same settings as casemail's listener, that
              answers 250 to every message and keeps nothing;
    casemail  casemail's own listener and pipeline, settings from the
              ``CASEMAIL_*`` environment (the outbox is filled, not sent),
              in ``listener.workers`` processes as ``serve`` runs them;
    pipe      the classic set-up: for each message, a new process of a
              small script (``casemail.bench.deliver_one``) reads it from
              its standard input and files it; 250 once it exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

log = logging.getLogger(__name__)

HOSTNAME = "bench.local"
MAX_SIZE = 30 * 1024 * 1024

# The exit codes of sysexits.h that a mail server's pipe understands.
EX_NOUSER = 67
EX_TEMPFAIL = 75

PIPE_SCRIPT = ("import sys; from casemail.bench.deliver_one import main; "
               "sys.exit(main(sys.argv[1:]))")


class Discard:
    async def handle_DATA(self, server: Any, session: Any,
                          envelope: Any) -> str:
        return "250 2.0.0 Discarded"


class PipeToProcess:
    """What a mail server's ``pipe`` delivery does, one process a mail."""

    async def handle_DATA(self, server: Any, session: Any,
                          envelope: Any) -> str:
        raw = envelope.original_content or b""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PIPE_SCRIPT, envelope.mail_from or "",
            envelope.rcpt_tos[0], stdin=asyncio.subprocess.PIPE)
        await proc.communicate(raw)
        if proc.returncode == 0:
            return "250 2.0.0 Delivered"
        if proc.returncode == EX_NOUSER:
            return "550 5.1.1 No such case"
        return "451 4.3.0 Try again later"


def _factory(handler: object) -> Any:
    def make() -> SMTP:
        return SMTP(handler, data_size_limit=MAX_SIZE, enable_SMTPUTF8=True,
                    hostname=HOSTNAME, timeout=300)
    return make


async def _serve(kind: str, sockets: Any = None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    runtime = None
    if kind == "casemail":
        from casemail.config import load_settings
        from casemail.intake.listener import start_listeners
        from casemail.runtime import build_runtime

        settings = load_settings(None, listener={"port": 0})
        runtime = build_runtime(settings, migrate_db=False)
        servers = await start_listeners(runtime, sockets=sockets)
    else:
        handler = Discard() if kind == "ceiling" else PipeToProcess()
        servers = [await loop.create_server(_factory(handler), "127.0.0.1", 0)]
    if sockets is None:
        port = servers[0].sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
    await stop.wait()
    for server in servers:
        server.close()
    if runtime is not None:
        runtime.close()


def _serve_workers(count: int) -> int:
    """casemail as ``serve --workers`` runs it: the socket bound here,
    the mail taken by ``count`` forked processes."""
    from casemail.config import load_settings
    from casemail.intake.listener import (
        bind_sockets,
        close_all,
        for_worker,
    )
    from casemail.workers import run_workers

    settings = load_settings(None, listener={"port": 0})
    each = bind_sockets(settings.listener, count)
    print(f"PORT {each[0].smtp.getsockname()[1]}", flush=True)

    def work(n: int) -> int:
        asyncio.run(_serve("casemail", for_worker(each, n)))
        return 0

    return run_workers(count, work, on_stop=lambda: close_all(each))


def main(argv: list[str]) -> int:
    kind = argv[0]
    if kind not in ("ceiling", "casemail", "pipe"):
        print(f"unknown server kind {kind!r}", file=sys.stderr)
        return 2
    if len(argv) > 1:  # a log file: what casemail logs costs CPU too
        logging.basicConfig(
            filename=Path(argv[1]), level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        # aiosmtpd logs three INFO lines a message on "mail.log"; casemail
        # logs its own decision, so the protocol's chatter stays out.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
    if kind == "casemail":
        from casemail.config import load_settings
        from casemail.workers import worker_count

        workers = worker_count(load_settings(None).listener.workers)
        if workers > 1:
            return _serve_workers(workers)
    asyncio.run(_serve(kind))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
