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


def run(args: argparse.Namespace) -> int:
    from casemail.config import load_settings
    from casemail.runtime import build_runtime

    settings = load_settings(args.config)
    listener = {k: v for k, v in (("host", args.host), ("port", args.port))
                if v is not None}
    if listener:
        settings = settings.model_copy(
            update={"listener": settings.listener.model_copy(update=listener)})
    logging.getLogger().setLevel(settings.log_level.upper())
    runtime = build_runtime(settings)
    try:
        asyncio.run(serve(runtime, deliver=not args.no_deliver,
                          sweep=not args.no_sweep))
    finally:
        runtime.close()
    return 0


async def serve(runtime: Any, *, deliver: bool = True,
                sweep: bool = True) -> None:
    """Run a gateway until a stop signal arrives."""
    from casemail.gateway import Gateway

    gateway = Gateway(runtime, deliver=deliver, sweep=sweep)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await gateway.start()
    except (OSError, OverflowError) as exc:
        lst = runtime.settings.listener
        reason = str(exc).rpartition(": ")[2] or type(exc).__name__
        raise ConfigError(
            f"cannot listen on {lst.host}:{lst.port}: {reason}; stop what "
            "holds it, or choose another [listener] host/port (or --host, "
            "--port)") from exc
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
