"""The whole benchmark in one run, in one of three sizes.

``full`` (the default, about eight minutes on two cores) is what the
README table comes from; ``quick`` (about a minute) is for a look after a
change; ``smoke`` (seconds) only proves that every part still runs, for
the test suite.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from casemail.bench import bigmail, intake, outbound, report, sweep
from casemail.clock import SystemClock

log = logging.getLogger(__name__)

PARTS = ("intake", "bigmail", "outbound", "sweep")


@dataclass(frozen=True)
class Profile:
    intake: intake.Plan
    big_mb: int = 25
    outbound_mails: int = 2000
    sweep_totals: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    sweep_due: int = 100
    parts: tuple[str, ...] = field(default=PARTS)


PROFILES = {
    "full": Profile(intake.Plan()),
    # The targets' own load (8 connections) and one beside it; a 10 MB
    # big mail (the ratio to its size is what counts).
    "quick": Profile(intake.Plan(sessions=(1, 8), seconds=1.0, runs=1,
                                 warm_seconds=0.5, pipe_max_sessions=1,
                                 cases=32),
                     big_mb=10, outbound_mails=500,
                     sweep_totals=(10_000, 50_000), sweep_due=50),
    # Two cells on one database: a mail repeated across cells would be
    # filed once, and the smoke test would see it.
    "smoke": Profile(intake.Plan(sizes=("2k",), sessions=(1, 2), seconds=0.3,
                                 warm_seconds=0.0, pipe_mails_per_session=1,
                                 pipe_max_sessions=2, runs=1, cases=3),
                     big_mb=1, outbound_mails=20, sweep_totals=(60, 120),
                     sweep_due=10),
}


def profile(name: str, *, runs: int | None = None,
            parts: tuple[str, ...] | None = None) -> Profile:
    chosen = PROFILES[name]
    if runs is not None:
        chosen = replace(chosen, intake=replace(chosen.intake, runs=runs))
    if parts is not None:
        chosen = replace(chosen, parts=parts)
    return chosen


def run_all(chosen: Profile, workdir: Path, pg_url: str | None,
            command: str) -> dict[str, Any]:
    """Every part of ``chosen``; the results, ready for ``report``."""
    started = SystemClock().now()
    res: dict[str, Any] = {
        "date": f"{started:%Y-%m-%d %H:%M} UTC", "machine": report.machine(),
        "command": command, "runs": chosen.intake.runs,
        "postgres": bool(pg_url), "plan": asdict(chosen)}
    if "intake" in chosen.parts:
        cells = intake.run_intake(chosen.intake, workdir, pg_url)
        res["intake"] = {"cells": [c.as_dict() for c in cells],
                         "medians": intake.medians(cells)}
    if "bigmail" in chosen.parts:
        res["bigmail"] = [b.as_dict() for b in bigmail.run_bigmail(
            workdir, pg_url, chosen.big_mb * 2**20)]
    if "outbound" in chosen.parts:
        res["outbound"] = [o.as_dict() for o in outbound.run_outbound(
            workdir, pg_url, chosen.outbound_mails, chosen.intake.runs)]
    if "sweep" in chosen.parts:
        res["sweep"] = [s.as_dict() for s in sweep.run_sweeps(
            workdir, pg_url, chosen.sweep_totals, chosen.sweep_due)]
    took = SystemClock().now() - started
    res["seconds"] = round(took / dt.timedelta(seconds=1))
    log.info("benchmark done in %ss", res["seconds"])
    return res
