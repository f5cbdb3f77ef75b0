"""Every answer the listener gives, over a real SMTP session.

550 5.1.1 at RCPT for a forged or unknown reply address, 552 for a mail
larger than the limit, 250 only once the mail is committed, and 451 4.3.0
when the database is away — never aiosmtpd's own ``500 Error: (…)``.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator

import pytest
from e2e_gateway import CUSTOMER, GatewayThread, open_case
from sqlalchemy import create_engine, select

from casemail.addresses import Party
from casemail.clock import FrozenClock
from casemail.config import Settings
from casemail.db import models as m
from casemail.runtime import Runtime, build_runtime


def mail(to: str, body: str = "Is there any news about my key?",
         message_id: str = "<q1@gmail.example>") -> bytes:
    return (f"From: Lena Fischer <{CUSTOMER}>\r\nTo: <{to}>\r\n"
            f"Subject: Re: Licence key\r\nMessage-ID: {message_id}\r\n"
            f"\r\n{body}\r\n").encode()


def test_forged_token_is_refused_at_rcpt(e2e_runtime: Runtime,
                                         smtp: smtplib.SMTP) -> None:
    """A reply address whose signature fails: 550 5.1.1, at RCPT."""
    case_id = open_case(e2e_runtime)
    good = e2e_runtime.signer.reply_address(case_id, Party.CUSTOMER)
    local, _, domain = good.partition("@")
    forged = f"{local[:-3]}aaa@{domain}"
    assert smtp.mail(CUSTOMER)[0] == 250
    code, text = smtp.rcpt(forged)
    assert (code, text[:5]) == (550, b"5.1.1")


def test_unknown_case_is_refused_at_rcpt_like_a_forged_one(
        e2e_runtime: Runtime, smtp: smtplib.SMTP) -> None:
    """A validly signed address of a case that does not exist: the same
    550 5.1.1, so nobody learns which cases exist."""
    address = e2e_runtime.signer.reply_address(4242, Party.CUSTOMER)
    smtp.mail(CUSTOMER)
    code, text = smtp.rcpt(address)
    assert (code, text[:5]) == (550, b"5.1.1")


def test_mail_for_another_domain_is_not_relayed(smtp: smtplib.SMTP) -> None:
    smtp.mail(CUSTOMER)
    code, text = smtp.rcpt("someone@elsewhere.example")
    assert (code, text[:5]) == (550, b"5.7.1")


def test_250_only_after_the_mail_is_committed(e2e_runtime: Runtime,
                                              smtp: smtplib.SMTP) -> None:
    """The answer to DATA is 250 and the message is already readable from
    a session of its own, with the case moved."""
    case_id = open_case(e2e_runtime)
    to = e2e_runtime.signer.reply_address(case_id, Party.CUSTOMER)
    smtp.mail(CUSTOMER)
    assert smtp.rcpt(to)[0] == 250
    code, text = smtp.data(mail(to))
    assert (code, text[:5]) == (250, b"2.0.0")
    with e2e_runtime.sessions() as s:
        message = s.scalars(select(m.Message).where(
            m.Message.message_id == "<q1@gmail.example>")).one()
        assert message.case_id == case_id
        assert message.new_text.startswith("Is there any news")


@pytest.fixture
def small_runtime(make_settings: Callable[..., Settings]) -> Iterator[Runtime]:
    rt = build_runtime(make_settings(max_message_size=2000),
                       clock=FrozenClock())
    yield rt
    rt.close()


@pytest.fixture
def small_gateway(small_runtime: Runtime) -> Iterator[GatewayThread]:
    running = GatewayThread(small_runtime).start()
    yield running
    running.stop()


def test_oversize_mail_is_refused_with_552(small_runtime: Runtime,
                                           small_gateway: GatewayThread) -> None:
    """Declared too big (SIZE, RFC 1870): 552 at MAIL. Undeclared but too
    big: 552 after DATA, and nothing filed."""
    case_id = open_case(small_runtime)
    to = small_runtime.signer.reply_address(case_id, Party.CUSTOMER)
    big = mail(to, body="x" * 70 + ("\r\n" + "y" * 70) * 60)
    with smtplib.SMTP("127.0.0.1", small_gateway.port, timeout=30) as client:
        client.ehlo("test.client")
        code, text = client.mail(CUSTOMER, [f"SIZE={len(big)}"])
        assert (code, text[:5]) == (552, b"5.3.4")
        client.rset()
        assert client.mail(CUSTOMER)[0] == 250
        assert client.rcpt(to)[0] == 250
        code, text = client.data(big)
        assert (code, text[:5]) == (552, b"5.3.4")
    with small_runtime.sessions() as s:
        assert s.scalars(select(m.RawMail)).first() is None


def _database_goes_away(rt: Runtime) -> None:
    """Point every new session at a database that cannot be reached."""
    if rt.settings.db_url.startswith("sqlite"):
        url = "sqlite:////nonexistent-casemail-dir/gone.db"
    else:
        url = "postgresql+psycopg://postgres@127.0.0.1:9/test"
    gone = create_engine(url)
    rt.sessions.configure(bind=gone)
    rt.read_sessions.configure(bind=gone)


def test_database_away_at_rcpt_means_451(e2e_runtime: Runtime,
                                         smtp: smtplib.SMTP) -> None:
    """The case cannot be looked up: try again later, never 5xx or 500."""
    case_id = open_case(e2e_runtime)
    to = e2e_runtime.signer.reply_address(case_id, Party.CUSTOMER)
    _database_goes_away(e2e_runtime)
    smtp.mail(CUSTOMER)
    code, text = smtp.rcpt(to)
    assert (code, text[:5]) == (451, b"4.3.0")


def test_database_away_at_data_means_451(e2e_runtime: Runtime,
                                         smtp: smtplib.SMTP) -> None:
    """The mail cannot be stored: 451 4.3.0, so the sender keeps it."""
    case_id = open_case(e2e_runtime)
    with e2e_runtime.sessions() as s:
        sent = s.scalars(select(m.Outbox.message_id).where(
            m.Outbox.case_id == case_id)).first()
    base = f"case@{e2e_runtime.settings.reply_domain}"
    raw = mail(base).replace(
        b"Message-ID:", f"In-Reply-To: {sent}\r\nMessage-ID:".encode())
    smtp.mail(CUSTOMER)
    assert smtp.rcpt(base)[0] == 250  # token-less: no lookup at RCPT
    _database_goes_away(e2e_runtime)
    code, text = smtp.data(raw)
    assert (code, text[:5]) == (451, b"4.3.0")
