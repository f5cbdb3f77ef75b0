"""File one mail from standard input, in a process of its own.

This is the "classic alternative" the benchmark compares casemail's
resident listener against: the way many helpdesks take mail, a mail
server's pipe delivery starting a small script per message. It pays for
the interpreter, the imports and the database connection every time;
that cost is what the comparison is about.

    python -c '…deliver_one…' SENDER RECIPIENT < message
"""

from __future__ import annotations

import sys

from casemail.bench.server import EX_NOUSER, EX_TEMPFAIL


def main(argv: list[str]) -> int:
    from casemail.cases.threading import route_recipient
    from casemail.config import load_settings
    from casemail.errors import AddressError
    from casemail.intake.pipeline import Envelope, Pipeline
    from casemail.runtime import build_runtime

    mail_from, recipient = argv[0], argv[1]
    raw = sys.stdin.buffer.read()
    runtime = build_runtime(load_settings(None), migrate_db=False)
    try:
        try:
            route = route_recipient(runtime.signer, recipient)
        except AddressError:
            return EX_NOUSER
        outcome = Pipeline(runtime).process(
            raw, Envelope(mail_from, recipient, "pipe"), route)
    finally:
        runtime.close()
    if outcome.status == "refused":
        return EX_NOUSER
    if outcome.status == "failed":
        return EX_TEMPFAIL
    return 0
