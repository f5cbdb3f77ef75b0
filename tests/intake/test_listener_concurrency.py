"""Database work never blocks the event loop: while one message waits to
be stored and one recipient waits to be checked, other sessions are
greeted and answered, and the waiting message is still answered ``250``
once the database lets it commit."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from intake_support import CUSTOMER, Served, Wire, address, mail, messages, open_case


def test_other_sessions_are_served_while_a_message_waits_for_the_database(
        serve: Callable[..., Served]) -> None:
    served = serve()
    case_id = open_case(served.rt)
    to = address(served.rt, case_id)
    db_path = served.rt.settings.db_url.split("///", 1)[1]

    storing = Wire(served.smtp_port)
    storing.hello()
    storing.ask(f"MAIL FROM:<{CUSTOMER}>")
    assert storing.ask(f"RCPT TO:<{to}>").code == 250

    # Another process' writer holds the database: every transaction of
    # ours (each begins IMMEDIATE) now waits for it.
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        assert storing.ask("DATA").code == 354
        storing.data(mail(to))

        checking = Wire(served.smtp_port)
        checking.hello()
        checking.ask(f"MAIL FROM:<{CUSTOMER}>")
        checking.send(f"RCPT TO:<{to}>")  # waits on the database too

        # A third session gets every answer at once (5 s at most each).
        with Wire(served.smtp_port, timeout=5) as third:
            greeting = third.hello()
            noop = third.ask("NOOP")
        filed_meanwhile = blocker.execute(
            "SELECT count(*) FROM messages WHERE case_id = ?",
            (case_id,)).fetchone()[0]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    stored, checked = storing.reply(), checking.reply()
    storing.close()
    checking.close()
    assert greeting.code == 250 and noop.code == 250
    assert filed_meanwhile == 1  # only the message that opened the case
    assert stored.lines == ["250 2.0.0 Message filed"]
    assert checked.lines == ["250 2.1.5 Recipient ok"]
    assert messages(served.rt, case_id)[-1] == "The key still does not work."
