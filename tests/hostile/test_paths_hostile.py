"""Odd MAIL FROM and RCPT TO arguments, sent byte for byte over a socket.

A plain ``<local@domain>`` path is read by one regular expression, every
other form by aiosmtpd's reading of the header grammar. Whichever reads
it, a client gets a final answer with an enhanced code and words a
person can read: 250 for what is a path, 5xx for what is not, never a
4xx (it would make a server retry a syntax error for days), never a
dropped connection, and the session goes on after a refusal.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from hostile_serve import open_cases, reply_address

from casemail.addresses import Party
from casemail.config import Settings, load_settings
from casemail.runtime import Runtime

DOMAIN = "reply.example.test"
# "250 2.1.0 Sender ok": a code, an enhanced code, then words.
_REPLY = re.compile(rb"^([245]\d\d) ([245]\.\d{1,3}\.\d{1,3}) (\S.*)$")


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return load_settings(
        None, data_dir=tmp_path / "var", database_url=db_url,
        signing_keys={"1": "hostile-paths-key-0123456789abcdef"},
        reply_domain=DOMAIN, listener={"host": "127.0.0.1", "port": 0})


class Wire:
    """An SMTP session spoken by hand: raw bytes out, reply lines in."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""
        assert self.reply()[0] == 220
        code, _ = self.send(b"EHLO mx.sender.example")
        assert code == 250

    def reply(self) -> tuple[int, bytes]:
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed after {lines!r}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if line[3:4] != b"-":
                return int(line[:3]), line

    def send(self, command: bytes) -> tuple[int, bytes]:
        self.sock.sendall(command + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()


def _clear(answer: tuple[int, bytes]) -> bool:
    """A final answer with an enhanced code and a human reason."""
    match = _REPLY.match(answer[1])
    return (match is not None
            and match.group(2)[:1] == match.group(1)[:1]
            and re.search(rb"[A-Za-z]{3}", match.group(3)) is not None)


# What is a path, and is taken: the forms a sending server really uses,
# spaced and cased oddly, with parameters, quoted or routed.
SENDERS_TAKEN = [
    b"MAIL FROM:<kim@customer.example>",
    b"MAIL FROM: <kim@customer.example>",
    b"MAIL FROM:\t<kim@customer.example>",
    b"mail from:<kim@customer.example>",
    b"MAIL FROM:<kim@customer.example>  ",
    b"MAIL FROM:<kim@customer.example> SIZE=200",
    b"MAIL FROM:<kim@customer.example>\tBODY=8BITMIME",
    b"MAIL FROM:<kim@customer.example> BODY=8BITMIME SMTPUTF8",
    b"MAIL FROM:<k.i.m+tag@sub.customer.example>",
    b"MAIL FROM:<o'brien@customer.example>",
    b"MAIL FROM:<{kim}|~x@customer.example>",
    b'MAIL FROM:<"kim smith"@customer.example>',
    b'MAIL FROM:<"kim@home"@customer.example>',
    b"MAIL FROM:<@relay.example:kim@customer.example>",
    b"MAIL FROM:<@a.example,@b.example:kim@customer.example>",
    b"MAIL FROM:<kim@[192.0.2.1]>",
    b"MAIL FROM:<>",
    b"MAIL FROM:<> BODY=7BIT",
    b"MAIL FROM:<k\xc3\xbcm@customer.example> SMTPUTF8",
    b"MAIL FROM:<" + b"k" * 64 + b"@customer.example>",
]

# What is not a path, or not one we take: refused with 5xx and a reason.
# (aiosmtpd's reading takes some broken forms, a lone quote or a missing
# closing bracket, as the header grammar would; those are left out.)
SENDERS_REFUSED = [
    b"MAIL FROM:",
    b"MAIL FROM:kim@customer.example>",
    b"MAIL FROM:<<kim@customer.example>>",
    b"MAIL FROM:<kim@customer.example>>",
    b"MAIL FROM:<kim@@customer.example>",
    b"MAIL FROM:<kim@>",
    b"MAIL FROM:<@customer.example>",
    b"MAIL FROM:<kim>",
    b"MAIL FROM:<kim@customer.example> SIZE=",
    b"MAIL FROM:<kim@customer.example> BOGUS=1",
    b"MAIL FROM:<kim@customer.example> SIZE=99999999999",
    b"MAIL FROM:<kim@customer.example>(a comment)",
    b"MAIL FROM:(a comment)<kim@customer.example>",
    b"MAIL FROM:<k\xc3\xbcm@customer.example>",
    b"MAIL FROM:<k\xfcm@customer.example> SMTPUTF8",
    b"MAIL FROM:<k\xff\xfem@customer.example>",
    b"MAIL FROM:<" + b"k" * 65 + b"@customer.example>",
    b"MAIL FROM:<" + b"k" * 900 + b"@customer.example>",
    b"MAIL FROM:<" + b"k." * 400 + b"k@customer.example>",
    b"MAIL FROM:<kim@" + b"d." * 200 + b"example>",
    b"MAIL FROM:<kim@customer.example>\x00",
]


def _mail_answers(port: int, commands: list[bytes]) -> list[
        tuple[bytes, tuple[int, bytes]]]:
    wire = Wire(port)
    answers = []
    try:
        for command in commands:
            answer = wire.send(command)
            answers.append((command, answer))
            if answer[0] == 250:
                assert wire.send(b"RSET")[0] == 250
        # Still the same session, still answering.
        assert wire.send(b"NOOP")[0] == 250
    finally:
        wire.close()
    return answers


def test_every_sender_path_that_is_one_is_taken(port: int) -> None:
    wrong = [(c, a) for c, a in _mail_answers(port, SENDERS_TAKEN)
             if a[0] != 250 or not _clear(a)]
    assert wrong == [], "\n".join(map(repr, wrong))


def test_every_sender_path_that_is_not_one_is_refused_in_words(
        port: int) -> None:
    wrong = [(c, a) for c, a in _mail_answers(port, SENDERS_REFUSED)
             if not 500 <= a[0] < 600 or not _clear(a)]
    assert wrong == [], "\n".join(map(repr, wrong))


def _rcpt_answers(port: int, commands: list[bytes]) -> list[
        tuple[bytes, tuple[int, bytes]]]:
    wire = Wire(port)
    answers = []
    try:
        assert wire.send(b"MAIL FROM:<kim@customer.example>")[0] == 250
        for command in commands:
            answers.append((command, wire.send(command)))
        assert wire.send(b"NOOP")[0] == 250
    finally:
        wire.close()
    return answers


def test_recipient_paths_get_a_final_answer_in_words(
        runtime: Runtime, port: int) -> None:
    (case,) = open_cases(runtime, 1)
    good = reply_address(runtime, case, Party.CUSTOMER).encode()
    local, _, domain = good.partition(b"@")
    taken = [
        b"RCPT TO:<" + good + b">",
        b"RCPT TO: <" + good + b">",
        b"RCPT TO:\t<" + good + b">\t",
        b"RCPT TO:<" + local + b"@" + domain.upper() + b">",
        b'RCPT TO:<"' + local + b'"@' + domain + b">",
        b"RCPT TO:<@relay.example:" + good + b">",
        b"RCPT TO:<postmaster>",
        b"RCPT TO:<Postmaster@" + domain + b">",
    ]
    refused = [
        b"RCPT TO:<" + good + b">>",
        b"RCPT TO:<" + good + b"> NOTIFY=",
        b"RCPT TO:<" + good + b">(comment)",
        b'RCPT TO:<"' + good + b">",
        b'RCPT TO:<"' + local + b'@' + domain + b">",
        b"RCPT TO:<" + local + b"x@" + domain + b">",
        b"RCPT TO:<" + local + b"\xc3\xa9@" + domain + b">",
        b"RCPT TO:<" + local + b"\xff@" + domain + b">",
        b"RCPT TO:<" + b"c" * 900 + b"@" + domain + b">",
        b"RCPT TO:<case+" + b"9" * 400 + b".c.x@" + domain + b">",
        b"RCPT TO:<@" + domain + b">",
        b"RCPT TO:<" + domain + b">",
        b"RCPT TO:<case@>",
        b"RCPT TO:<>",
        b"RCPT TO:<kim@elsewhere.example>",
        b"RCPT TO:<" + local + b"@" + domain + b".>",
    ]
    answers = _rcpt_answers(port, taken + refused)
    wrong = [(c, a) for c, a in answers[:len(taken)]
             if a[0] != 250 or not _clear(a)]
    wrong += [(c, a) for c, a in answers[len(taken):]
              if not 500 <= a[0] < 600 or not _clear(a)]
    assert wrong == [], "\n".join(map(repr, wrong))
