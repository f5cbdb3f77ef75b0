"""Two transactions that have each kept a mail naming one case, and then
both lock that case, take turns; neither is chosen as a deadlock victim.

Only PostgreSQL has row locks to hold here: SQLite lets one writer in at
a time, so the two never overlap."""

from __future__ import annotations

import threading

import pytest
from durability_kit import open_cases

from casemail.db.engine import transaction
from casemail.intake import rawstore
from casemail.intake.rawstore import Envelope
from casemail.runtime import Runtime


def test_two_mails_for_one_case_lock_it_in_turn(runtime: Runtime) -> None:
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL only")
    [case_id] = open_cases(runtime, 1)
    both_kept = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:
            with transaction(runtime.sessions) as s:
                raw = f"Subject: {n}\r\n\r\nhello {n}\r\n".encode()
                rawstore.keep(s, raw, Envelope("a@x.example", f"r{n}@y"),
                              f"key-{n}", runtime.clock.now(),
                              case_id=case_id)
                both_kept.wait()
                case = runtime.service.lock_case(s, case_id)
                case.unread = not case.unread
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
