"""Several processes taking mail on the same listening sockets.

One process of ours runs Python on one core at a time, whatever its
threads; a machine with more cores takes more mail with more processes
(``listener.workers``). The parent binds the listening sockets, then
forks the workers: each builds its own runtime after the fork (database
connections must not cross it) and serves listening sockets of its own
on the shared ports, over which the kernel spreads new connections
(``intake.listener.bind_sockets``).

The parent does nothing else: it passes SIGTERM and SIGINT on to the
workers, starts a worker again if one dies, and returns once all have
stopped. Each worker stops as ``serve`` always does, finishing the mail
in flight, so a stop loses nothing. On SQLite the workers take turns to
write (``db.engine.SQLiteWriter``), and each turn starts by reading
again what the other wrote, so on SQLite more workers seldom take more
mail (the benchmark in the README measured fewer); on PostgreSQL they
are simply several instances sharing one database, which casemail is
built for.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable

from casemail.errors import CasemailError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # from linux/prctl.h

# A worker that exits with an error sooner than this after it started is
# not started again: it would only fail again (a bad setting, a database
# away), and the operator must see that instead of a loop of restarts.
STEADY_AFTER = 5.0


def worker_count(setting: int) -> int:
    """``listener.workers``: 0 means one per core."""
    return setting if setting > 0 else (os.cpu_count() or 1)


def run_workers(count: int, work: Callable[[int], int], *,
                on_stop: Callable[[], None] | None = None) -> int:
    """Run ``work(n)`` for n in 0..count-1, each in a forked process,
    until a signal stops them; the exit status for the command.

    ``on_stop`` runs in this process once a stop begins: closing its
    copies of the listening sockets there means a new connection is
    refused at once, as with one process, instead of waiting unanswered
    in a queue no worker reads any more.

    Called before any event loop or database connection exists in this
    process: a fork copies only the calling thread.
    """
    children: dict[int, tuple[int, float]] = {}  # pid → (n, started)
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping and on_stop is not None:
            on_stop()
        stopping = True
        for pid in children:
            _signal(pid, signal.SIGTERM)

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        for n in range(count):
            children[_fork(n, work, old)] = (n, time.monotonic())
        log.info("%s workers started", count)
        while children:
            pid, code = os.wait()  # PEP 475: retried after each signal
            n, started = children.pop(pid, (None, 0.0))
            if n is None:
                continue
            exit_code = os.waitstatus_to_exitcode(code)
            if stopping:
                continue
            # Killed by a signal (the OOM killer, an operator) is no
            # fault of its start: that one is started again.
            if exit_code > 0 and time.monotonic() - started < STEADY_AFTER:
                log.error("worker %s stopped at start (exit %s); stopping "
                          "the others", n, exit_code)
                stop(signal.SIGTERM, None)
                status = 1
                continue
            log.warning("worker %s (pid %s) ended with %s; starting it "
                        "again", n, pid, exit_code)
            children[_fork(n, work, old)] = (n, time.monotonic())
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)
    log.info("all workers stopped")
    return status


def _fork(n: int, work: Callable[[int], int],
          handlers: dict[int, object]) -> int:
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    # The child: its own signal handling, and it never returns into the
    # parent's code, whatever happens.
    code = 70  # EX_SOFTWARE
    try:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        _stop_with(parent)
        code = work(n)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except CasemailError as exc:  # a setting, a certificate: said as serve says it
        print(f"casemail: worker {n}: {exc}", file=sys.stderr)
        code = 1
    except BaseException:
        log.exception("worker %s failed", n)
    finally:
        logging.shutdown()
        os._exit(code)


def _stop_with(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when the parent dies.

    A parent killed outright (SIGKILL, the OOM killer) cannot pass on a
    stop; workers left behind would serve unsupervised and hold the port
    against the next ``serve``. SIGTERM lets each finish its mail in
    flight, as any stop does. Linux only (prctl); elsewhere workers
    outlive a killed parent."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            log.warning("workers will outlive a killed parent: no prctl")
    if os.getppid() != parent:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # ended meanwhile; os.wait() will tell
