"""``casemail serve``: the listener, the delivery worker and the sweep.

Runs until SIGINT or SIGTERM, then stops gracefully: no new sessions, the
mail in flight answered, the worker and the sweep stopped between passes
(``casemail.gateway``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from casemail.errors import ConfigError

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the listener, delivery and sweep",
                       description="Run casemail until SIGINT/SIGTERM.")
    p.add_argument("--host", help="listener address (default: settings)")
    p.add_argument("--port", type=_port,
                   help="SMTP port (default: settings)")
    p.add_argument("--workers", type=_count,
                   help="processes taking mail, 0 for one per core "
                        "(default: settings)")
    p.add_argument("--no-deliver", action="store_true",
                   help="do not run the delivery worker here")
    p.add_argument("--no-sweep", action="store_true",
                   help="do not run the auto-close sweep here")
    p.set_defaults(func=run)


def _port(text: str) -> int:
    # Checked here: settings updated from the command line skip validation.
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port: give a number from 0 to 65535")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of workers: give 0 or more")
    return int(text)


def run(args: argparse.Namespace) -> int:
    from casemail.cli.settings import command_settings
    from casemail.runtime import build_runtime
    from casemail.workers import worker_count

    listener = {k: v for k, v in (("host", args.host), ("port", args.port),
                                  ("workers", args.workers))
                if v is not None}
    settings = command_settings(args, **listener)
    workers = worker_count(settings.listener.workers)
    runtime = build_runtime(settings)
    if workers > 1:
        return _run_workers(runtime, workers, args)
    try:
        asyncio.run(serve(runtime, deliver=not args.no_deliver,
                          sweep=not args.no_sweep))
    finally:
        runtime.close()
    return 0


def _run_workers(runtime: Any, workers: int,
                 args: argparse.Namespace) -> int:
    """Bind here, then serve from ``workers`` forked processes; only the
    first delivers and sweeps (the others would only queue behind it)."""
    from casemail.intake.listener import (
        bind_sockets,
        close_all,
        for_worker,
    )
    from casemail.runtime import build_runtime
    from casemail.workers import run_workers

    settings = runtime.settings  # with the signing keys made, if new
    runtime.close()  # no connection may cross the fork
    try:
        each = bind_sockets(settings.listener, workers)
    except OSError as exc:
        raise _cannot_listen(settings.listener, exc) from exc

    def work(n: int) -> int:
        child = build_runtime(settings, migrate_db=False)
        try:
            asyncio.run(serve(child, deliver=n == 0 and not args.no_deliver,
                              sweep=n == 0 and not args.no_sweep,
                              sockets=for_worker(each, n)))
        finally:
            child.close()
        return 0

    log.info("casemail serving SMTP on port %s with %s workers",
             each[0].smtp.getsockname()[1], workers)
    return run_workers(workers, work, on_stop=lambda: close_all(each))


def _cannot_listen(lst: Any, exc: BaseException) -> ConfigError:
    reason = str(exc).rpartition(": ")[2] or type(exc).__name__
    return ConfigError(
        f"cannot listen on {lst.host}:{lst.port}: {reason}; stop what "
        "holds it, or choose another [listener] host/port (or --host, "
        "--port)")


async def serve(runtime: Any, *, deliver: bool = True,
                sweep: bool = True, sockets: Any = None) -> None:
    """Run a gateway until a stop signal arrives."""
    from casemail.gateway import Gateway

    gateway = Gateway(runtime, deliver=deliver, sweep=sweep, sockets=sockets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await gateway.start()
    except (OSError, OverflowError) as exc:
        raise _cannot_listen(runtime.settings.listener, exc) from exc
    log.info("casemail serving SMTP on port %s (delivery %s, sweep %s)",
             gateway.smtp_port, "on" if deliver else "off",
             "on" if sweep else "off")
    try:
        await stop.wait()
        log.info("stopping: finishing the mail in flight")
    finally:
        await gateway.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    log.info("stopped")
