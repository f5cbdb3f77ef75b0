"""``casemail sweep``: one auto-close pass, for cron or an operator.

``--dry-run`` lists what the pass would warn and close, with dates, and
changes nothing. ``--as-of`` looks ahead (or back) with a dry run: it
shows what the passes until that moment would do if nobody wrote. A real
pass always runs at the clock's own time (see ``casemail.sweep``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from collections.abc import Callable

from casemail.cli.settings import open_runtime
from casemail.clock import utc
from casemail.sweep import Planned, SweepReport, run_sweep

_RELATIVE = re.compile(r"^\+(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
_DONE = {"warn": "warned", "close": "closed"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="warn and auto-close idle cases, once")
    p.add_argument("--dry-run", action="store_true",
                   help="list what would be warned and closed; change "
                        "nothing")
    p.add_argument("--as-of", metavar="TIME", type=_moment,
                   help="with --dry-run: as of TIME (ISO 8601, UTC unless "
                        "it says otherwise, or +7d / +12h / +30m from now)")
    p.add_argument("--limit", type=int, metavar="N",
                   help="act on at most N cases in this pass")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.as_of is not None and not args.dry_run:
        # A real pass in the future would close cases before the date
        # their warning named; one in the past would date mail wrongly.
        print("casemail: --as-of needs --dry-run", file=sys.stderr)
        return 2
    with open_runtime(args) as runtime:
        as_of = args.as_of(runtime.clock.now()) if args.as_of else None
        report = run_sweep(runtime, dry_run=args.dry_run, limit=args.limit,
                           as_of=as_of)
    for line in describe(report):
        print(line)
    return 1 if report.failed else 0


def describe(report: SweepReport) -> list[str]:
    """One line per case the pass touched (or would), then the summary."""
    if report.dry_run:
        lines = [_line(p, True) for p in report.planned]
    else:
        done = set(report.warned) | set(report.closed)
        lines = [_line(p, False) for p in report.planned if p.case_id in done]
        lines += [f"case {i}: failed, see the log" for i in report.failed]
    return [*lines, report.summary()]


def _line(step: Planned, would: bool) -> str:
    verb = f"would {step.action}" if would else _DONE[step.action]
    text = f"case {step.case_id} ({step.store}): {verb}"
    if step.action == "warn":
        text += f" at {_show(step.at)}, closes {_show(step.close_at)}"
    else:
        text += f" at {_show(step.at)} (due {_show(step.close_at)})"
    return text


def _show(when: dt.datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M} UTC"


def _moment(value: str) -> Callable[[dt.datetime], dt.datetime]:
    """Parse --as-of now; resolve it against the clock once it exists."""
    match = _RELATIVE.match(value.strip())
    if match:
        delta = dt.timedelta(**{_UNITS[match[2]]: int(match[1])})
        return lambda now: now + delta
    try:
        at = utc(dt.datetime.fromisoformat(value.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is neither ISO 8601 nor +Nd/+Nh/+Nm") from None
    return lambda now: at
