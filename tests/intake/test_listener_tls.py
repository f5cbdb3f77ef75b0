"""STARTTLS with a configured certificate, and SMTP AUTH only over it:
a password never crosses the wire in the clear (RFC 4954 4), and when
users are configured nobody delivers without logging in."""

from __future__ import annotations

import smtplib
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from intake_support import CUSTOMER, Served, address, mail, messages, open_case

USERS = {"edge-mta": "correct horse battery staple"}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed certificate made for this module by openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-days", "2", "-subj", "/CN=casemail.local",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return {"tls_cert": cert, "tls_key": key}


def client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # our own self-signed test cert
    return context


def test_starttls_is_offered_and_mail_goes_through_encrypted(
        serve: Callable[..., Served], certificate: dict[str, Path]) -> None:
    served = serve(**certificate)
    case_id = open_case(served.rt)
    to = address(served.rt, case_id)
    with smtplib.SMTP("127.0.0.1", served.smtp_port) as client:
        client.ehlo("client.example")
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")  # no users configured
        client.starttls(context=client_tls())
        client.ehlo("client.example")
        assert not client.has_extn("starttls")
        cipher = client.sock.cipher()  # type: ignore[union-attr]
        client.sendmail(CUSTOMER, [to], mail(to))
    assert cipher is not None
    assert messages(served.rt, case_id)[-1] == "The key still does not work."


def test_auth_is_not_offered_before_tls_and_mail_needs_it(
        serve: Callable[..., Served], certificate: dict[str, Path]) -> None:
    served = serve(auth_users=USERS, **certificate)
    with smtplib.SMTP("127.0.0.1", served.smtp_port) as client:
        client.ehlo("client.example")
        offered = client.has_extn("auth")
        clear_auth = client.docmd("AUTH", "PLAIN")
        clear_mail = client.docmd("MAIL", f"FROM:<{CUSTOMER}>")
    assert not offered
    assert clear_auth == (538, b"5.7.11 Encryption required for requested "
                               b"authentication mechanism")
    assert clear_mail == (530, b"5.7.0 Authentication required")


def test_a_wrong_password_is_refused_and_the_right_one_delivers(
        serve: Callable[..., Served], certificate: dict[str, Path]) -> None:
    served = serve(auth_users=USERS, **certificate)
    case_id = open_case(served.rt)
    to = address(served.rt, case_id)
    with smtplib.SMTP("127.0.0.1", served.smtp_port) as client:
        client.starttls(context=client_tls())
        client.ehlo("client.example")
        mechanisms = client.esmtp_features["auth"].split()
        with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
            client.login("edge-mta", "Tr0ub4dor&3")
        client.login("edge-mta", USERS["edge-mta"])
        client.sendmail(CUSTOMER, [to], mail(to))
    assert sorted(mechanisms) == ["LOGIN", "PLAIN"]
    assert wrong.value.smtp_code == 535
    assert wrong.value.smtp_error == b"5.7.8 Authentication credentials invalid"
    assert messages(served.rt, case_id)[-1] == "The key still does not work."


def test_the_unix_socket_needs_neither_tls_nor_auth(
        serve: Callable[..., Served], certificate: dict[str, Path],
        tmp_path: Path) -> None:
    serve(auth_users=USERS, lmtp_socket=tmp_path / "lmtp.sock", **certificate)
    with smtplib.LMTP(str(tmp_path / "lmtp.sock")) as client:
        code, _ = client.ehlo("client.example")
        features = dict(client.esmtp_features)
        answer = client.docmd("MAIL", f"FROM:<{CUSTOMER}>")
    assert code == 250
    assert "starttls" not in features and "auth" not in features
    assert answer[0] == 250
