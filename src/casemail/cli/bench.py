"""``casemail bench``: measure intake, big mail, outbound and the sweep.

Prints the results as Markdown (the table kept in the README) and can
write them as JSON too. Needs nothing but this machine: the servers,
the relay and the databases are made and removed by the run itself;
PostgreSQL is used when the given server is reachable.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from casemail.bench import databases, report, suite

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure throughput, latency, memory")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="one short run of each part (about a minute)")
    size.add_argument("--smoke", action="store_true",
                      help="the tiniest run, only to see that it works")
    p.add_argument("--runs", type=int,
                   help="intake and outbound runs to take medians of")
    p.add_argument("--only", help="comma-separated parts: "
                   + ",".join(suite.PARTS))
    db = p.add_mutually_exclusive_group()
    db.add_argument("--postgres-url", default=os.environ.get(
        "CASEMAIL_BENCH_POSTGRES_URL", databases.DEFAULT_PG_URL),
        help="PostgreSQL to measure on, in a schema of its own "
             "(default: %(default)s)")
    db.add_argument("--no-postgres", action="store_true",
                    help="SQLite only")
    p.add_argument("--workdir", type=Path,
                   help="keep databases and logs here (default: a "
                        "temporary folder, removed after)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--markdown", type=Path,
                   help="also write the Markdown table here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    name = "smoke" if args.smoke else "quick" if args.quick else "full"
    parts = tuple(args.only.split(",")) if args.only else None
    unknown = set(parts or ()) - set(suite.PARTS)
    if unknown:
        print(f"casemail: unknown part(s): {', '.join(sorted(unknown))}",
              file=sys.stderr)
        return 2
    chosen = suite.profile(name, runs=args.runs, parts=parts)
    pg_url = None
    if not args.no_postgres and databases.postgres_reachable(
            args.postgres_url):
        pg_url = args.postgres_url
    command = _command(args)
    with _quiet_servers(), _stop_cleanly():
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            results = suite.run_all(chosen, args.workdir, pg_url, command)
        else:
            with tempfile.TemporaryDirectory(prefix="casemail-bench-") as tmp:
                results = suite.run_all(chosen, Path(tmp), pg_url, command)
    text = report.markdown(results)
    print(text, end="")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if args.markdown is not None:
        args.markdown.write_text(text)
    return 0


def _command(args: argparse.Namespace) -> str:
    """The command line that repeats this run, for the results table."""
    words = ["casemail", "bench"]
    words += ["--smoke"] if args.smoke else ["--quick"] if args.quick else []
    words += [f"--runs {args.runs}"] if args.runs else []
    words += [f"--only {args.only}"] if args.only else []
    words += ["--no-postgres"] if args.no_postgres else []
    return " ".join(words)


@contextmanager
def _quiet_servers() -> Iterator[None]:
    """Only the benchmark's progress here; the servers log to files in the
    work folder. The levels are put back after (tests run this in-process).
    """
    levels = {"casemail": logging.WARNING, "casemail.bench": logging.INFO,
              "alembic": logging.WARNING}
    before = {name: logging.getLogger(name).level for name in levels}
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


@contextmanager
def _stop_cleanly() -> Iterator[None]:
    """Stopped with SIGTERM, still stop the servers and drop the schemas."""
    before = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
