"""The long-running commands, end to end: ``replay`` against a running
listener, ``serve`` as its own process stopped by SIGTERM, and ``demo``,
the README's first command."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e_gateway import CUSTOMER, GatewayThread, open_case
from sqlalchemy import select

from casemail.addresses import Party
from casemail.cli.main import main
from casemail.db import models as m
from casemail.outbound.sink import MaildirSink
from casemail.runtime import Runtime

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def write_config(rt: Runtime, path: Path, *, port: int,
                 relay_port: int = 1) -> Path:
    st = rt.settings
    key = st.signing_keys["1"]
    path.write_text(
        f'data_dir = "{st.data_dir}"\ndatabase_url = "{st.database_url}"\n'
        f'[signing_keys]\n"1" = "{key}"\n'
        f'[listener]\nport = {port}\n'
        f'[relay]\nport = {relay_port}\npoll_interval = 0.1\n')
    return path


def simple_mail(number: int) -> bytes:
    return (f"From: Lena Fischer <{CUSTOMER}>\nTo: Northwind Keys "
            f"<case@reply.example.test>\nSubject: Re: key\nMessage-ID: "
            f"<r{number}@gmail.example>\n\nStill waiting ({number}).\n"
            ).encode()


def test_replay_fills_placeholders_and_counts(
        e2e_runtime: Runtime, gateway: GatewayThread, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Fixture mails go through the listener with the labels' addresses;
    the closing line counts accepted, held and refused mail."""
    case_id = open_case(e2e_runtime)
    config = write_config(e2e_runtime, tmp_path / "c.toml", port=gateway.port)
    code = main(["--config", str(config), "replay",
                 "--case", f"case1={case_id}", "--case", f"case5={case_id}",
                 str(FIXTURES / "01-case1-merchant-thunderbird.eml"),
                 str(FIXTURES / "20-case5-merchant-unknown-address.eml"),
                 str(FIXTURES / "22-forged-token.eml")])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[-1] == "3 mails: 1 accepted, 1 held, 1 refused"
    assert "22-forged-token.eml: 550 5.1.1" in out
    with e2e_runtime.sessions() as s:
        assert s.get(m.Case, case_id).state == "awaiting_customer"


def test_replay_of_a_folder_to_one_address_shows_progress(
        e2e_runtime: Runtime, gateway: GatewayThread, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--to overrides the headers; a long run reports progress."""
    case_id = open_case(e2e_runtime)
    folder = tmp_path / "mails"
    folder.mkdir()
    for number in range(20):
        (folder / f"{number:02}.eml").write_bytes(simple_mail(number))
    to = e2e_runtime.signer.reply_address(case_id, Party.CUSTOMER)
    config = write_config(e2e_runtime, tmp_path / "c.toml", port=gateway.port)
    code = main(["--config", str(config), "replay", "-q", "--to", to,
                 str(folder)])
    out, err = capsys.readouterr()
    assert code == 0
    assert out.strip() == "20 mails: 20 accepted, 0 held, 0 refused"
    assert "replayed 20/20" in err
    with e2e_runtime.sessions() as s:
        texts = s.scalars(select(m.Message.new_text).where(
            m.Message.case_id == case_id, m.Message.source == "email"))
        assert len(list(texts)) == 20


def test_replay_sends_the_rest_when_a_mail_cannot_be_sent(
        e2e_runtime: Runtime, gateway: GatewayThread, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A file without a recipient and one naming an unknown case label
    each get an error line of their own, on a line of its own after the
    progress; every other mail is filed, and the count has them all."""
    case_id = open_case(e2e_runtime)
    to = e2e_runtime.signer.reply_address(case_id, Party.CUSTOMER)
    folder = tmp_path / "mails"
    folder.mkdir()
    for number in range(22):
        mail = simple_mail(number).replace(
            b"case@reply.example.test", to.encode())
        (folder / f"{number:02}.eml").write_bytes(mail)
    (folder / "04.eml").write_bytes(b"From: lena@gmail.example\n\nhi\n")
    (folder / "12.eml").write_bytes(simple_mail(12).replace(
        b"case@reply.example.test", b"{{customer_reply_address:nocase}}"))
    config = write_config(e2e_runtime, tmp_path / "c.toml", port=gateway.port)
    code = main(["--config", str(config), "replay", str(folder)])
    out, err = capsys.readouterr()
    assert code == 1
    assert out.splitlines()[-1] == (
        "22 mails: 20 accepted, 0 held, 0 refused, 2 not sent")
    assert f"{folder / '13.eml'}: 250 " in out
    errors = [line for line in err.splitlines() if "casemail:" in line]
    assert errors == [
        f"casemail: {folder / '04.eml'}: not sent: no recipient: give --to "
        "or a To header",
        f"casemail: {folder / '12.eml'}: not sent: no case for label "
        "'nocase': give --case nocase=ID"]
    assert err.endswith("replayed 22/22\n")
    with e2e_runtime.sessions() as s:
        filed = s.scalars(select(m.Message.id).where(
            m.Message.case_id == case_id, m.Message.source == "email"))
        assert len(list(filed)) == 20


def test_replay_counts_what_it_could_not_send_when_the_listener_is_gone(
        e2e_runtime: Runtime, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listens: one line says so, and every mail is not sent."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nobody listens
    for number in range(2):
        (tmp_path / f"{number}.eml").write_bytes(simple_mail(number))
    config = write_config(e2e_runtime, tmp_path / "c.toml", port=port)
    code = main(["--config", str(config), "replay", "-q",
                 str(tmp_path / "0.eml"), str(tmp_path / "1.eml")])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == "2 mails: 0 accepted, 0 held, 0 refused, 2 not sent\n"
    assert err.startswith(f"casemail: cannot talk to 127.0.0.1:{port}: ")


def test_one_mail_is_counted_in_the_singular(
        e2e_runtime: Runtime, gateway: GatewayThread, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    case_id = open_case(e2e_runtime)
    to = e2e_runtime.signer.reply_address(case_id, Party.CUSTOMER)
    (tmp_path / "one.eml").write_bytes(simple_mail(1))
    config = write_config(e2e_runtime, tmp_path / "c.toml", port=gateway.port)
    code = main(["--config", str(config), "replay", "-q", "--to", to,
                 str(tmp_path / "one.eml")])
    assert code == 0
    assert capsys.readouterr().out == (
        "1 mail: 1 accepted, 0 held, 0 refused\n")


def test_placeholders_without_a_case_label_are_an_error(
        e2e_runtime: Runtime, gateway: GatewayThread, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(e2e_runtime, tmp_path / "c.toml", port=gateway.port)
    code = main(["--config", str(config), "replay",
                 str(FIXTURES / "01-case1-merchant-thunderbird.eml")])
    assert code == 1
    assert "--case case1=ID" in capsys.readouterr().err


def _wait_for(predicate: object, what: str, timeout: float = 30.0) -> None:
    """Poll a condition another process brings about, up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_serve_files_mail_delivers_and_stops_on_sigterm(
        e2e_runtime: Runtime, sink: MaildirSink, tmp_path: Path) -> None:
    """A separate ``casemail serve`` process takes a reply over SMTP,
    notifies the merchant through the relay, and exits 0 on SIGTERM."""
    case_id = open_case(e2e_runtime)
    config = write_config(e2e_runtime, tmp_path / "c.toml", port=0,
                          relay_port=sink.port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "casemail.cli.main", "--config", str(config),
         "serve", "--no-sweep"], stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        port = _port_from_log(proc)
        to = e2e_runtime.signer.reply_address(case_id, Party.CUSTOMER)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            refused = client.sendmail(CUSTOMER, [to], simple_mail(1))
        assert refused == {}
        # The new-case notice and the reply notice both reach the relay.
        _wait_for(lambda: len(sink.messages()) >= 2, "the notifications")
        proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=60)
        assert proc.returncode == 0, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    with e2e_runtime.sessions() as s:
        assert s.get(m.Case, case_id).state == "awaiting_merchant"
    assert any("Still waiting (1)" in str(msg) for msg in sink.messages())


def _port_from_log(proc: subprocess.Popen[str]) -> int:
    assert proc.stderr is not None
    for line in proc.stderr:
        if "serving SMTP on port" in line:
            return int(line.rsplit("port", 1)[1].split()[0])
    raise AssertionError(f"serve ended early with {proc.wait()}")


def test_the_demo_runs_to_the_end(tmp_path: Path) -> None:
    """The README's first command: every fixture as expected, the cases
    printed, and the sent mail in a maildir."""
    result = subprocess.run(
        [sys.executable, "-m", "casemail.cli.main", "demo", "--dir",
         str(tmp_path / "demo")], capture_output=True, text=True,
        timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "✗" not in result.stdout
    assert "[case7] Case" in result.stdout
    sent = list((tmp_path / "demo" / "sent-mail" / "new").iterdir())
    assert len(sent) > 20
    assert f"{len(sent)} mails went out" in result.stdout
