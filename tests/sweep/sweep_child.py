"""A sweep pass in a process of its own, which kills itself with SIGKILL
inside its Nth case transaction: every change of that case flushed, the
database commit not yet sent. Used by test_sweep_crash.py.

    python sweep_child.py DB_URL DATA_DIR ISO_TIME KILL_AT
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import event

from casemail.clock import FrozenClock
from casemail.config import load_settings
from casemail.runtime import build_runtime
from casemail.sweep import run_sweep


def main(url: str, data_dir: str, when: str, kill_at: int) -> None:
    settings = load_settings(
        None, data_dir=Path(data_dir), database_url=url,
        signing_keys={"1": "test-signing-key-0123456789abcdef"})
    rt = build_runtime(settings, clock=FrozenClock(
        dt.datetime.fromisoformat(when)), migrate_db=False)
    commits = 0

    def before_dbapi_commit(conn: Any) -> None:
        nonlocal commits
        commits += 1
        if commits == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    event.listen(rt.engine, "commit", before_dbapi_commit)
    run_sweep(rt)
    sys.exit(3)  # the pass ended before the kill: the test is void


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
