"""Big mail: the server's peak memory while it takes one 25 MB message.

The server is warmed with a few ordinary mails first, so the baseline is
a server that has imported and cached what it needs; then its peak is
reset (``clear_refs``) and the big mail sent. What counts is the peak
above that baseline, against the mail's size on the wire. The bare
aiosmtpd ceiling is measured the same way: what the protocol layer
alone costs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from casemail.bench import databases as dbs
from casemail.bench.client import SEQUENCE, Session
from casemail.bench.mails import Template, big_mail, templates
from casemail.bench.process import ServerProcess

log = logging.getLogger(__name__)


@dataclass
class BigMail:
    target: str
    size_mb: float
    baseline_mb: float
    peak_mb: float
    above_mb: float
    times_size: float  # peak above baseline / size
    seconds: float  # end of DATA → reply
    code: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


async def _send(port: int, warm: list[Template], big: Template,
                before_big: object) -> tuple[int, float]:
    session = Session("127.0.0.1", port)
    await session.open()
    for mail in warm:
        await session.send(mail, next(SEQUENCE))
    before_big()  # type: ignore[operator]
    code, seconds = await session.send(big, next(SEQUENCE))
    await session.close()
    return code, seconds


def measure_big(server: ServerProcess, target: str, warm: list[Template],
                big: Template) -> BigMail:
    marks = {}

    def reset() -> None:
        marks["baseline"] = server.usage().rss
        server.reset_peak()

    code, seconds = asyncio.run(_send(server.port, warm, big, reset))
    peak = server.usage().hwm
    above = max(0, peak - marks["baseline"])
    result = BigMail(target, big.size / 2**20, marks["baseline"] / 2**20,
                     peak / 2**20, above / 2**20, above / big.size, seconds,
                     code)
    log.info("%s: %.1f MB mail, peak %.1f MB above baseline (%.2fx), "
             "answered %s in %.2fs", target, result.size_mb, result.above_mb,
             result.times_size, code, seconds)
    return result


def run_bigmail(workdir: Path, pg_url: str | None,
                size: int = 25 * 2**20) -> list[BigMail]:
    results = []
    names = ["sqlite"] + (["postgres"] if pg_url else [])
    for name in names:
        with dbs.database(name, workdir, pg_url or "",
                                  "bigmail") as db:
            data_dir = workdir / f"big-{name}"
            rt = dbs.prepared_runtime(db, data_dir)
            try:
                targets = dbs.open_cases(rt, 4)
            finally:
                rt.close()
            warm = templates(targets, "2k") + templates(targets, "100k")
            big = big_mail(targets[0], size)
            if name == "sqlite":
                with ServerProcess("ceiling") as server:
                    results.append(measure_big(server, "ceiling", warm, big))
            env = dbs.env_for(db, data_dir)
            with ServerProcess("casemail", env=env,
                               log_file=data_dir / "casemail.log") as server:
                results.append(measure_big(server, f"casemail-{name}",
                                           warm, big))
    return results
