"""``casemail bench --smoke`` runs every part end to end, so the
benchmark cannot rot unnoticed. It asserts what was done, never how fast:
timed targets are the benchmark's business, not the test suite's."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from casemail.cli.main import main
from casemail.db import models as m

# What the process had before the command ran.
before: dict[str, object] = {}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, str]:
    work = tmp_path_factory.mktemp("bench")
    out = work / "results.json"
    before["logging"] = logging.getLogger("casemail").level
    before["sigterm"] = signal.getsignal(signal.SIGTERM)
    code = main(["bench", "--smoke", "--no-postgres", "--workdir",
                 str(work / "run"), "--json", str(out),
                 "--markdown", str(work / "results.md")])
    assert code == 0
    return json.loads(out.read_text()), work, (work / "results.md").read_text()


def _cells(results: dict, target: str) -> list[dict]:
    return [c for c in results["intake"]["cells"] if c["target"] == target]


def test_intake_files_every_mail_it_answers_250(smoke) -> None:
    """casemail answered only 250 in its windows, and every one of those
    mails is filed in the database with its notification queued: none
    was a repeat answered as a duplicate."""
    results, work, _ = smoke
    cells = _cells(results, "casemail-sqlite")
    assert len(cells) == 2
    assert all(c["sent"] > 0 and c["failed"] == 0 for c in cells)
    # Every cell writes into fresh databases of its own.
    dbs = sorted((work / "run").glob("intake-*.db"))
    assert len(dbs) == len(cells)
    filed = replies = 0
    for db in dbs:
        engine = create_engine(f"sqlite:///{db}")
        with engine.connect() as conn:
            filed += conn.scalar(select(func.count(m.RawMail.id)).where(
                m.RawMail.status == "filed")) or 0
            replies += conn.scalar(select(func.count(m.Outbox.id)).where(
                m.Outbox.template == "customer_reply")) or 0
        engine.dispose()
    # One filed mail per 250, the process-per-message cells' included
    # (they write into their cell's database).
    answered = cells + _cells(results, "pipe")
    assert filed == sum(c["accepted"] for c in answered)
    assert replies == filed


def test_ceiling_and_per_message_process_were_measured(smoke) -> None:
    results, _, _ = smoke
    for ceiling in _cells(results, "ceiling"):
        assert ceiling["sent"] > 0 and ceiling["failed"] == 0
        assert ceiling["cpu_ms"] > 0 and ceiling["peak_mb"] > 1
    pipes = _cells(results, "pipe")
    assert [p["sessions"] for p in pipes] == [1, 2]
    assert all(p["sent"] > 0 and p["failed"] == 0 for p in pipes)


def test_big_mail_outbound_and_sweep_all_completed(smoke) -> None:
    results, _, _ = smoke
    assert {b["code"] for b in results["bigmail"]} == {250}
    assert all(b["size_mb"] >= 1 for b in results["bigmail"])
    [out] = results["outbound"]
    assert out["sent"] == out["mails"] == 20
    steps = results["sweep"]
    assert [s["cases"] for s in steps] == [60, 120]
    assert all(s["warned"] + s["closed"] == s["due"] == 10 for s in steps)


def test_run_leaves_logging_and_signals_as_it_found_them(smoke) -> None:
    """The command runs inside other programs' processes (this one): it
    must not leave casemail's loggers muted or SIGTERM rerouted."""
    assert logging.getLogger("casemail").level == before["logging"]
    assert signal.getsignal(signal.SIGTERM) is before["sigterm"]


def test_report_names_machine_command_and_targets(smoke) -> None:
    _, _, text = smoke
    assert "casemail bench --smoke --no-postgres" in text
    assert "cores" in text and "#### Targets" in text
    assert "| 2k | 1 | casemail-sqlite |" in text
    assert "| 2k | 2 | casemail-sqlite |" in text


def test_a_smaller_run_says_so_and_names_the_sizes_it_had(smoke) -> None:
    # The smoke run's big mail is 1 MB and its outbound 20 mails: a reader
    # must not take its targets for the full run's.
    _, _, text = smoke
    assert "A shorter, smaller run than the full one" in text
    assert "casemail-sqlite: 1 MB mail < 3× its size above idle" in text
    assert "25 MB" not in text
    assert "Intake: one run;" in text and "run(s)" not in text
