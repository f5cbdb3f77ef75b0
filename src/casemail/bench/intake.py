"""Intake: messages per second against the listener's own ceiling.

For each size and number of connections, the same client sends the same
mail to, in turn: the ceiling (bare aiosmtpd, discarding), casemail on
SQLite, casemail on PostgreSQL, and the per-message-process alternative.
Each server is a fresh process, so its peak memory is its own for that
cell. Besides the rate, a cell keeps the server's CPU per message (less
disturbed than the rate when other work shares the machine) and how many
cores that other work kept busy meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import subprocess
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from shutil import which

from casemail.bench import databases as dbs
from casemail.bench.client import run_load
from casemail.bench.mails import Template, templates
from casemail.bench.process import (
    ServerProcess,
    Usage,
    busy_cpu,
    cpu_of_command,
)

log = logging.getLogger(__name__)


@dataclass
class Cell:
    target: str  # ceiling, casemail-sqlite, casemail-postgres, pipe, …
    size: str
    sessions: int
    run: int
    sent: int
    failed: int
    rate: float  # messages per second
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # server CPU per message
    db_cpu_ms: float  # PostgreSQL's backends, per message
    peak_mb: float  # the server's VmHWM
    others: float  # cores kept busy by other processes meanwhile
    accepted: int = 0  # every 250 of the cell, in the window or not

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    sizes: tuple[str, ...] = ("2k", "100k")
    sessions: tuple[int, ...] = (1, 8, 32)
    seconds: float = 3.0
    # The same load before each window, not counted (``client.run_load``):
    # the server's first mails cost more than the rest.
    warm_seconds: float = 1.0
    # A process per message answers in seconds, not milliseconds: its
    # window closes after this many mails per connection (or the time).
    pipe_mails_per_session: int = 2
    pipe_seconds: float = 60.0
    # A process per message at 32 connections spends minutes starting
    # interpreters before the window opens; 1 and 8 tell the story.
    pipe_max_sessions: int = 8
    pipe_runs: int = 1
    runs: int = 3
    # Enough cases that none grows a history longer than real ones have.
    cases: int = 200


@dataclass
class Backend:
    target: str
    db: dbs.Database
    data_dir: Path
    mails: dict[str, list[Template]]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def measure(server: ServerProcess, mails: list[Template], sessions: int,
            seconds: float, *, target: str, size: str, run: int,
            max_messages: int | None = None,
            warm_seconds: float = 0.0) -> Cell:
    marks: dict[str, tuple[Usage, float, float, float, float]] = {}

    def mark(name: str) -> None:
        marks[name] = (server.usage(), cpu_of_command("postgres"),
                       busy_cpu(), time.process_time(), time.perf_counter())

    # Nothing to warm in a server that starts a process per message.
    load = asyncio.run(run_load(server.port, mails, sessions=sessions,
                                seconds=seconds, max_messages=max_messages,
                                warm_up=max_messages is None,
                                warm_seconds=warm_seconds,
                                on_start=lambda: mark("start"),
                                on_stop=lambda: mark("stop")))
    (u0, pg0, busy0, own0, t0), (u1, pg1, busy1, own1, t1) = (
        marks["start"], marks["stop"])
    done = max(load.sent, 1)
    # PostgreSQL's backends serve everyone on the machine: counted only
    # where it is our database, and then they may include others' work.
    db_cpu = pg1 - pg0 if target.endswith("postgres") else 0.0
    ours = (u1.cpu - u0.cpu) + (own1 - own0) + db_cpu
    cell = Cell(
        target, size, sessions, run, load.sent, load.failed,
        load.sent / load.seconds,
        percentile(load.latencies, 0.5) * 1e3,
        percentile(load.latencies, 0.99) * 1e3,
        (u1.cpu - u0.cpu) / done * 1e3, db_cpu / done * 1e3,
        u1.hwm / 2**20, max(0.0, (busy1 - busy0) - ours) / (t1 - t0),
        load.accepted)
    log.info("%s %s x%d: %.0f/s p99 %.1f ms cpu %.2f ms/msg%s", target,
             size, sessions, cell.rate, cell.p99_ms, cell.cpu_ms,
             f" ({load.failed} failed: {load.codes})" if load.failed else "")
    return cell


def smtp_source_ceiling(mail: Template, size: str, sessions: int,
                        seconds: float, workdir: Path, run: int) -> Cell | None:
    """The ceiling as Postfix's C load generator sees it, when installed.

    smtp-source sends one file again and again (``-F``), which is fine for
    a server that discards, but would be filed once and then found a
    duplicate by casemail: that is why casemail is measured with our own
    client, and this row only tells how much that client holds back.
    """
    tool = which("smtp-source") or which("/usr/sbin/smtp-source")
    if tool is None:
        return None
    path = workdir / f"smtp-source-{size}.eml"
    # -F adds CRLF to each line and does the dot-stuffing itself.
    path.write_bytes((mail.head_for(0) + mail.body).replace(b"\r\n", b"\n"))
    count = max(sessions * 4, int({"2k": 1500, "100k": 300}[size] * seconds))
    with ServerProcess("ceiling") as server:
        u0, t0 = server.usage(), time.perf_counter()
        subprocess.run(
            [tool, "-d", "-s", str(sessions), "-m", str(count), "-F",
             str(path), "-f", mail.mail_from, "-t", mail.rcpt,
             f"127.0.0.1:{server.port}"],
            check=True, timeout=600, stdout=subprocess.DEVNULL)
        elapsed = time.perf_counter() - t0
        u1 = server.usage()
    nan = float("nan")
    return Cell("ceiling (smtp-source)", size, sessions, run, count, 0,
                count / elapsed, nan, nan, (u1.cpu - u0.cpu) / count * 1e3,
                0.0, u1.hwm / 2**20, nan)


def run_intake(plan: Plan, workdir: Path, pg_url: str | None) -> list[Cell]:
    """Every cell of the plan, ``plan.runs`` times, servers interleaved so
    that a burst of other work on the machine hits them all alike."""
    names = ["sqlite"] + (["postgres"] if pg_url else [])
    cells: list[Cell] = []
    for run in range(1, plan.runs + 1):
        for size in plan.sizes:
            for sessions in plan.sessions:
                # Fresh databases for every cell: each starts from the same
                # state, not from what the cells before it wrote (the
                # merchants' notifications of the last hour, which every
                # new notification counts, would grow from cell to cell).
                with ExitStack() as stack:
                    backends = [_prepare(stack, name, workdir,
                                         pg_url or "", plan)
                                for name in names]
                    cells += _one_round(plan, backends, size, sessions,
                                        workdir, run)
    return cells


def _one_round(plan: Plan, backends: list[Backend], size: str,
               sessions: int, workdir: Path, run: int) -> list[Cell]:
    sqlite = backends[0]
    out = []
    with ServerProcess("ceiling") as server:
        out.append(measure(server, sqlite.mails[size], sessions,
                           plan.seconds, target="ceiling", size=size,
                           run=run, warm_seconds=plan.warm_seconds))
    ref = smtp_source_ceiling(sqlite.mails[size][0], size, sessions,
                              plan.seconds, workdir, run)
    if ref is not None:
        out.append(ref)
    for backend in backends:
        with _casemail(backend, "casemail") as server:
            out.append(measure(server, backend.mails[size], sessions,
                               plan.seconds, target=backend.target,
                               size=size, run=run,
                               warm_seconds=plan.warm_seconds))
    if sessions <= plan.pipe_max_sessions and run <= plan.pipe_runs:
        with _casemail(sqlite, "pipe") as server:
            out.append(measure(
                server, sqlite.mails[size], sessions, plan.pipe_seconds,
                target="pipe", size=size, run=run,
                max_messages=sessions * plan.pipe_mails_per_session))
    return out


def _casemail(backend: Backend, kind: str) -> ServerProcess:
    env = dbs.env_for(backend.db, backend.data_dir)
    # The client opens all its sessions from one address.
    env["CASEMAIL_LISTENER__MAX_CONNECTIONS_PER_CLIENT"] = "1000"
    if kind == "casemail":
        # As it is deployed on a machine with several cores: one process
        # per core (``serve --workers 0``), on SQLite too, now that what
        # its write lock covers is short enough for two to gain (README).
        env["CASEMAIL_LISTENER__WORKERS"] = "0"
    return ServerProcess(kind, env=env,
                         log_file=backend.data_dir / f"{kind}.log")


def _prepare(stack: ExitStack, name: str, workdir: Path, pg_url: str,
             plan: Plan) -> Backend:
    """A database with the cases the mail writes into."""
    db = stack.enter_context(dbs.database(name, workdir, pg_url, "intake"))
    data_dir = workdir / f"var-{name}"
    rt = dbs.prepared_runtime(db, data_dir)
    try:
        targets = dbs.open_cases(rt, plan.cases)
    finally:
        rt.close()
    mails = {size: templates(targets, size) for size in plan.sizes}
    return Backend(f"casemail-{name}", db, data_dir, mails)


def medians(cells: list[Cell]) -> list[dict[str, object]]:
    """One row per (target, size, sessions): the median of the runs."""
    groups: dict[tuple[str, str, int], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.target, cell.size, cell.sessions),
                          []).append(cell)
    rows = []
    for (target, size, sessions), group in groups.items():
        row: dict[str, object] = {"target": target, "size": size,
                                  "sessions": sessions, "runs": len(group)}
        for key in ("rate", "p50_ms", "p99_ms", "cpu_ms", "db_cpu_ms",
                    "peak_mb", "others"):
            row[key] = statistics.median(getattr(c, key) for c in group)
        rows.append(row)
    return rows
