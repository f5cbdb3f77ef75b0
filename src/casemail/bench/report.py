"""The benchmark's results as Markdown: the machine, the command, the
medians, and each target beside what was measured."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

Row = dict[str, Any]


def machine() -> dict[str, object]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.partition(":")[2].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {"nproc": os.cpu_count(), "cpu": cpu,
            "ram_gb": round(mem_kb / 2**20, 1),
            "load": Path("/proc/loadavg").read_text().split()[0]}


def _f(value: object, digits: int = 0) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "–"
    return f"{value:,.{digits}f}"


def _ceilings(rows: list[Row], target: str) -> dict[tuple[str, int], Row]:
    return {(r["size"], r["sessions"]): r for r in rows
            if r["target"] == target}


def intake_table(rows: list[Row]) -> list[str]:
    own = _ceilings(rows, "ceiling")
    ref = _ceilings(rows, "ceiling (smtp-source)")
    out = ["| size | conn. | server | msg/s | ÷ ceiling | ÷ smtp-source "
           "ceiling | CPU ÷ | p50 ms | p99 ms | CPU ms/msg | peak MB |",
           "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in sorted(rows, key=lambda r: (r["size"] != "2k", r["sessions"])):
        key = (r["size"], r["sessions"])
        ratio = r["rate"] / own[key]["rate"] if key in own else math.nan
        ref_ratio = r["rate"] / ref[key]["rate"] if key in ref else math.nan
        cpu_ratio = (own[key]["cpu_ms"] / r["cpu_ms"]
                     if key in own and r["cpu_ms"] else math.nan)
        cpu = _f(r["cpu_ms"], 2)
        if r.get("db_cpu_ms"):
            cpu += f" (+{_f(r['db_cpu_ms'], 2)} db)"
        out.append(
            f"| {r['size']} | {r['sessions']} | {r['target']} | "
            f"{_f(r['rate'], 0 if r['rate'] >= 10 else 2)} | "
            f"{_f(100 * ratio)} % | "
            f"{_f(100 * ref_ratio)} % | {_f(100 * cpu_ratio)} % | "
            f"{_f(r['p50_ms'], 1)} | {_f(r['p99_ms'], 1)} | {cpu} | "
            f"{_f(r['peak_mb'])} |")
    return out


def targets_table(res: dict[str, Any]) -> list[str]:
    rows: list[Row] = res.get("intake", {}).get("medians", [])
    out = ["| target | measured | met |", "|---|---|---|"]

    def line(what: str, measured: str, ok: bool | None) -> None:
        mark = "–" if ok is None else ("yes" if ok else "**no**")
        out.append(f"| {what} | {measured} | {mark} |")

    ceiling = _ceilings(rows, "ceiling")
    ref = _ceilings(rows, "ceiling (smtp-source)")
    pipe = _ceilings(rows, "pipe")
    for r in rows:
        if r["sessions"] != 8 or not r["target"].startswith("casemail"):
            continue
        key = (r["size"], 8)
        base = ref.get(key) or ceiling.get(key)
        if base:
            share = r["rate"] / base["rate"]
            against = "smtp-source" if key in ref else "our client"
            line(f"{r['target']} {r['size']} at 8 conn. ≥ 50 % of ceiling",
                 f"{100 * share:.0f} % (ceiling by {against})", share >= 0.5)
        line(f"{r['target']} {r['size']} p99 < 50 ms at 8 conn.",
             f"{r['p99_ms']:.0f} ms", r["p99_ms"] < 50)
        if key in pipe and pipe[key]["rate"]:
            times = r["rate"] / pipe[key]["rate"]
            line(f"{r['target']} {r['size']} ≥ 10× per-message process",
                 f"{times:.0f}×", times >= 10)
    big_mb = res.get("plan", {}).get("big_mb", 25)
    for big in res.get("bigmail", []):
        if big["target"].startswith("casemail"):
            line(f"{big['target']}: {big_mb} MB mail < 3× its size above "
                 "idle",
                 f"{big['times_size']:.1f}×", big["times_size"] < 3)
    for out_row in res.get("outbound", []):
        line(f"outbound on {out_row['db']} ≥ 500 mails/s",
             f"{out_row['rate']:.0f}/s", out_row["rate"] >= 500)
    by_db: dict[str, list[Row]] = {}
    for sw in res.get("sweep", []):
        by_db.setdefault(sw["db"], []).append(sw)
    for db, steps in by_db.items():
        first, last = steps[0], steps[-1]
        growth = last["seconds"] / first["seconds"]
        line(f"sweep on {db} grows with due cases, not all",
             f"{first['cases']:,} → {last['cases']:,} cases: ×{growth:.1f}",
             growth < 2)
    return out


def _medians(runs: int) -> str:
    return "one run" if runs == 1 else f"medians of {runs} runs"


def _full_size(res: dict[str, Any]) -> bool:
    """Whether the run had the full run's sizes (``suite.PROFILES``)."""
    plan = res.get("plan", {})
    return plan.get("big_mb", 25) >= 25 \
        and plan.get("outbound_mails", 2000) >= 2000


def _pipe_runs(res: dict[str, Any]) -> str:
    runs = res.get("plan", {}).get("intake", {}).get("pipe_runs", 1)
    return "once" if runs == 1 else f"in {runs} runs"


def markdown(res: dict[str, Any]) -> str:
    mach = res["machine"]
    out = [f"Measured {res['date']} on {mach['nproc']} cores "
           f"({mach['cpu']}), {mach['ram_gb']} GB RAM; load average "
           f"{mach['load']} at the start. Command: `{res['command']}`."
           + (f" Intake: {_medians(res['runs'])}; the per-message "
              f"process {_pipe_runs(res)}." if "intake" in res else "")
           + (" Outbound: "
              + ("one run." if res["runs"] == 1
                 else f"the median of {res['runs']} runs.")
              if "outbound" in res else "")
           + ("" if _full_size(res) else
              " A shorter, smaller run than the full one: its figures are"
              " for a look after a change; the targets are judged on the"
              " full run."),
           "", "#### Targets", ""]
    out += targets_table(res)
    intake = res.get("intake")
    if intake:
        out += ["", "#### Intake", ""] + intake_table(intake["medians"])
        others = [r["others"] for r in intake["medians"]
                  if isinstance(r.get("others"), float)
                  and not math.isnan(r["others"])]
        if others:
            out += ["", f"Other processes kept {min(others):.1f}–"
                    f"{max(others):.1f} cores busy during the windows."]
    if res.get("bigmail"):
        out += ["", "#### Big mail", "",
                "| server | mail MB | idle MB | peak MB | above idle | "
                "× size | reply s |", "|---|--:|--:|--:|--:|--:|--:|"]
        out += [f"| {b['target']} | {b['size_mb']:.1f} | "
                f"{b['baseline_mb']:.0f} | {b['peak_mb']:.0f} | "
                f"{b['above_mb']:.0f} | {b['times_size']:.1f} | "
                f"{b['seconds']:.2f} |" for b in res["bigmail"]]
    if res.get("outbound"):
        out += ["", "#### Outbound", "",
                "| database | connections | mails | sent | seconds | mails/s |",
                "|---|--:|--:|--:|--:|--:|"]
        out += [f"| {o['db']} | {o['connections']} | {o['mails']} | "
                f"{o['sent']} | "
                f"{o['seconds']:.1f} | {o['rate']:.0f} |"
                for o in res["outbound"]]
    if res.get("sweep"):
        out += ["", "#### Sweep", "",
                "| database | cases | due | warned | closed | sweep s |",
                "|---|--:|--:|--:|--:|--:|"]
        out += [f"| {s['db']} | {s['cases']:,} | {s['due']} | "
                f"{s['warned']} | {s['closed']} | {s['seconds']:.2f} |"
                for s in res["sweep"]]
    return "\n".join(out) + "\n"
