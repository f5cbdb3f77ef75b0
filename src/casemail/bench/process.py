"""A server under test in its own process, and what it costs.

CPU comes from ``/proc/<pid>/stat`` (user and system time, with that of
the children it waited for, which is where the per-message scripts of the
pipe alternative spend theirs); memory from ``/proc/<pid>/status``:
``VmHWM`` is the peak resident size. Writing 5 to ``clear_refs`` resets
that peak (Linux 4.0+), so a measurement can start from a known level.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    cpu: float  # seconds, user + system, with waited-for children
    rss: int  # bytes now
    hwm: int  # bytes, peak since start or the last reset


class ServerProcess:
    """``python -m casemail.bench.server KIND``, until ``stop()``."""

    def __init__(self, kind: str, *, env: dict[str, str] | None = None,
                 log_file: Path | None = None) -> None:
        args = [sys.executable, "-m", "casemail.bench.server", kind]
        if log_file is not None:
            args.append(str(log_file))
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"{kind} server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.kind = kind

    @property
    def pid(self) -> int:
        return self.proc.pid

    def usage(self) -> Usage:
        """The server's own, with its workers' when it forked some: their
        CPU and memory added up (shared pages then count once a worker,
        so memory errs high)."""
        cpu, rss, hwm = _own(self.pid)
        if self.kind == "casemail":
            for child in _children(self.pid):
                more = _own(child)
                cpu, rss, hwm = cpu + more[0], rss + more[1], hwm + more[2]
        return Usage(cpu, rss, hwm)

    def reset_peak(self) -> bool:
        pids = [self.pid]
        if self.kind == "casemail":
            pids += _children(self.pid)
        return all([_reset_peak(pid) for pid in pids])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _own(pid: int) -> tuple[float, int, int]:
    """CPU seconds (with waited-for children), RSS and peak RSS of one
    process; zeros for one that has just ended."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2]
        status = _status(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0, 0, 0
    utime, stime, cutime, cstime = (int(x) for x in fields.split()[11:15])
    return ((utime + stime + cutime + cstime) / TICK,
            status.get("VmRSS", 0), status.get("VmHWM", 0))


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(x) for x in text.split()]


def _reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False  # not ours to reset: the peak counts from start
    return True


def _status(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024  # given in kB
    return values


def cpu_of_command(name: str) -> float:
    """CPU seconds of every live process called ``name`` (the database
    server's backends, whose work a client-server database does for us)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # ended while we looked
        comm = text[text.find("(") + 1:text.rfind(")")]
        if comm == name:
            fields = text.rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def busy_cpu() -> float:
    """CPU seconds the whole machine has been busy since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(x) for x in fields]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return (sum(ticks[:8]) - idle) / TICK
