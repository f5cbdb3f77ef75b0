"""A real Postfix in front of casemail, configured as the README says.

A private Postfix instance (its own configuration, queue and log in a
temporary folder) relays the reply domain to casemail: over SMTP by
default, and one case's address over LMTP on a unix socket, the usual
Postfix set-up. Its bounces go to a local sink. The tests check what the
people running casemail rely on: a reply travels through and changes the
case; casemail's 451 makes Postfix keep the mail and try again, and it is
then filed once; a 550 at RCPT makes Postfix return the mail to its
sender.

Postfix comes from Debian's packages (``.ci/setup --test`` installs it).
Without it the module is skipped, except under CI, where it fails.
"""

from __future__ import annotations

import email
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from intake_support import (
    CUSTOMER,
    MERCHANT,
    Served,
    address,
    mail,
    messages,
    open_case,
)
from postfix_instance import PrivatePostfix, installed

from casemail.addresses import Party
from casemail.cases.content import Content
from casemail.clock import FrozenClock
from casemail.config import load_settings
from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.outbound.sink import MaildirSink
from casemail.runtime import Runtime, build_runtime

pytestmark = pytest.mark.postfix

SINK_DOMAIN = "sink.example.test"
REPLY_DOMAIN = "reply.example.test"


def _require_postfix() -> None:
    in_ci = os.environ.get("CI") == "true"
    if not installed():
        if in_ci:
            pytest.fail("Postfix is not installed; .ci/setup --test installs "
                        "it from Debian's packages")
        pytest.skip("Postfix is not installed (apt-get install postfix, or "
                    "run bash .ci/setup --test as root)")
    if os.geteuid() != 0 and not in_ci:
        pytest.skip("a private Postfix instance must be started as root")


@dataclass
class Edge:
    """casemail, the Postfix in front of it, and where bounces land."""

    rt: Runtime
    served: Served
    postfix: PrivatePostfix
    bounces: MaildirSink
    cases: dict[str, int]

    def relay(self, sender: str, to: str, raw: bytes) -> None:
        """Hand a mail to Postfix, as the sending world would."""
        import smtplib

        with smtplib.SMTP("127.0.0.1", self.postfix.port, timeout=10) as smtp:
            smtp.sendmail(sender, [to], raw)


@pytest.fixture(scope="module")
def edge() -> Iterator[Edge]:
    _require_postfix()
    # Postfix's daemons run as the postfix user: its folders (and the LMTP
    # socket) must be reachable for it, which pytest's 0700 tmp is not.
    folder = Path(tempfile.mkdtemp(prefix="casemail-edge-"))
    folder.chmod(0o755)
    try:
        yield from _edge(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _edge(folder: Path) -> Iterator[Edge]:
    settings = load_settings(
        None, data_dir=folder / "var",
        database_url=f"sqlite:///{folder / 'casemail.db'}",
        signing_keys={"1": "test-signing-key-0123456789abcdef"},
        reply_domain=REPLY_DOMAIN,
        listener={"host": "127.0.0.1", "port": 0,
                  "lmtp_socket": folder / "lmtp.sock"})
    rt = build_runtime(settings, clock=FrozenClock())
    cases = {name: open_case(rt) for name in ("smtp", "lmtp", "retry")}
    for case_id in cases.values():
        merchant_answers(rt, case_id)
    with Served(rt) as served, MaildirSink(folder / "bounces") as bounces:
        postfix = PrivatePostfix(folder / "postfix", relay_domains=[
            REPLY_DOMAIN, SINK_DOMAIN], transports={
            # One address over LMTP, as an exception to the domain's route.
            address(rt, cases["lmtp"]):
                f"lmtp:unix:{settings.listener.lmtp_socket}",
            REPLY_DOMAIN: f"smtp:[127.0.0.1]:{served.smtp_port}",
            SINK_DOMAIN: f"smtp:[127.0.0.1]:{bounces.port}",
        })
        postfix.start()
        try:
            yield Edge(rt, served, postfix, bounces, cases)
        finally:
            postfix.stop()
    rt.close()


def merchant_answers(rt: Runtime, case_id: int) -> None:
    """Move the case to 'awaiting customer', so a reply visibly moves it."""
    with transaction(rt.sessions) as s:
        case = rt.service.lock_case(s, case_id)
        rt.service.add_message(
            s, case, party=Party.MERCHANT, author_address=MERCHANT,
            content=Content.typed("Please try this new key.", source="api"))


def state(rt: Runtime, case_id: int) -> str:
    with rt.sessions() as s:
        case = s.get(m.Case, case_id)
        assert case is not None
        return case.state


def eventually(check: Callable[[], bool], what: str, edge: Edge,
               within: float = 20) -> None:
    """Wait for Postfix (another process) to have done something."""
    end = time.monotonic() + within
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"{what} did not happen within {within}s; "
                                 f"postfix log:\n{edge.postfix.log()[-3000:]}")
        time.sleep(0.1)


def log_lines(edge: Edge, needle: str) -> list[str]:
    return [line for line in edge.postfix.log().splitlines() if needle in line]


@pytest.mark.parametrize("route", ["smtp", "lmtp"])
def test_a_reply_relayed_by_postfix_moves_the_case(edge: Edge,
                                                   route: str) -> None:
    case_id = edge.cases[route]
    to = address(edge.rt, case_id)
    text = f"Still no key, sorry (sent via {route})."
    edge.relay(CUSTOMER, to, mail(to, text=text,
                                  message_id=f"<pf-{route}@customer.example>"))

    eventually(lambda: messages(edge.rt, case_id)[-1] == text,
               f"filing over {route}", edge)
    assert state(edge.rt, case_id) == "awaiting_merchant"
    sent = [ln for ln in log_lines(edge, f"to=<{to}>") if "status=sent" in ln]
    assert len(sent) == 1
    assert f"postfix/{route}[" in sent[0]
    assert "(250 2.0.0 Message filed)" in sent[0]


def test_a_451_makes_postfix_keep_the_mail_and_retry_and_it_is_filed_once(
        edge: Edge) -> None:
    case_id = edge.cases["retry"]
    to = address(edge.rt, case_id)
    db = sqlite3.connect(edge.rt.settings.db_url.split("///", 1)[1],
                         isolation_level=None)
    # The table the raw mail goes into is briefly gone: storing fails for
    # real, while the RCPT check (which reads cases) still works.
    db.execute("ALTER TABLE raw_mails RENAME TO raw_mails_away")
    try:
        edge.relay(CUSTOMER, to, mail(to, text="Any news on the refund?",
                                      message_id="<pf-retry@customer.example>"))
        eventually(lambda: any(
            "status=deferred" in ln and "451 4.3.0" in ln
            for ln in log_lines(edge, f"to=<{to}>")), "a deferral", edge)
        kept_by_postfix = [q["queue_name"] for q in edge.postfix.queue()]
        filed_meanwhile = messages(edge.rt, case_id)
    finally:
        db.execute("ALTER TABLE raw_mails_away RENAME TO raw_mails")
        db.close()

    # Postfix tries again by itself (short queue timers) and now it sticks.
    # Its queue manager can pass over a mail it finds still held by the
    # delivery that deferred it ("skipped, still being delivered") and
    # then leave it for longer than its timers say: a flush, as an
    # operator would, after a few seconds.
    def filed() -> bool:
        return messages(edge.rt, case_id)[-1] == "Any news on the refund?"
    try:
        eventually(filed, "the retry", edge, within=5)
    except AssertionError:
        edge.postfix.flush()
        eventually(filed, "the retry after a flush", edge)
    eventually(lambda: not edge.postfix.queue(), "an empty queue", edge)
    # Kept: one entry, in whichever of its queues Postfix had it at
    # that instant (being tried again, waiting, or handed back in).
    assert kept_by_postfix in (["deferred"], ["active"], ["incoming"])
    assert "Any news on the refund?" not in filed_meanwhile
    assert messages(edge.rt, case_id).count("Any news on the refund?") == 1
    assert state(edge.rt, case_id) == "awaiting_merchant"


def test_a_550_at_rcpt_makes_postfix_return_the_mail_to_its_sender(
        edge: Edge) -> None:
    sender = f"mallory@{SINK_DOMAIN}"
    forged = address(edge.rt, edge.cases["smtp"]).replace("@", "x@")
    with edge.rt.sessions() as s:
        kept_before = s.query(m.RawMail).count()
    edge.relay(sender, forged, mail(forged, sender=sender,
                                    message_id="<pf-forged@sink.example.test>"))

    eventually(lambda: len(edge.bounces.messages()) == 1, "a bounce", edge)
    bounce = edge.bounces.messages()[0]
    report = email.message_from_bytes(bytes(bounce))
    text = bytes(bounce).decode("utf-8", "replace")
    assert report.get_content_type() == "multipart/report"
    assert report["To"].endswith(f"<{sender}>") or sender in report["To"]
    assert f"Final-Recipient: rfc822; {forged}" in text
    assert "550 5.1.1 No such case: this reply address is not valid" in text
    with edge.rt.sessions() as s:
        assert s.query(m.RawMail).count() == kept_before
