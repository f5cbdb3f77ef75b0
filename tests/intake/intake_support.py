"""What the intake tests share: a gateway on loopback, a line-level client
that shows every reply exactly as the wire carries it, and a store with a
case to reply to.

Kept out of conftest so test modules can import it by name.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from casemail.addresses import Party
from casemail.cases.content import Content
from casemail.db import models as m
from casemail.db.engine import transaction
from casemail.gateway import Gateway
from casemail.intake import rawstore
from casemail.runtime import Runtime

T = TypeVar("T")

CUSTOMER = "ines.varga@customer.example"
MERCHANT = "desk@northwind-audio.example"


class Served:
    """A started ``Gateway`` (no delivery, no sweep) whose event loop runs
    in a thread of its own, as under ``casemail serve``."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.loop = asyncio.new_event_loop()
        self.gateway = Gateway(runtime, deliver=False, sweep=False)
        self._ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.gateway.start())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        self.loop.run_forever()

    def __enter__(self) -> Served:
        self._thread.start()
        self._ready.result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.run(self.gateway.stop(), timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(
            timeout)

    @property
    def smtp_port(self) -> int:
        return self.gateway.smtp_port

    def port_of(self, index: int) -> int:
        return int(self.gateway.servers[index].sockets[0].getsockname()[1])


@dataclass
class Reply:
    code: int
    lines: list[str]

    @property
    def text(self) -> str:
        return " / ".join(self.lines)


class Wire:
    """A client that speaks one line at a time and reads replies whole."""

    def __init__(self, port: int | None = None, *, path: Path | None = None,
                 source: str = "127.0.0.1", timeout: float = 10) -> None:
        if path is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(str(path))
        else:
            self.sock = socket.create_connection(
                ("127.0.0.1", port or 0), timeout=timeout,
                source_address=(source, 0))
        self.file = self.sock.makefile("rb")

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def send(self, line: str | bytes) -> None:
        data = line.encode() if isinstance(line, str) else line
        self.sock.sendall(data + b"\r\n")

    def reply(self) -> Reply:
        """One reply, all its continuation lines (RFC 5321 4.2.1)."""
        lines = []
        while True:
            raw = self.file.readline()
            if not raw:
                raise ConnectionError("closed while a reply was expected: "
                                      f"{lines}")
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(text)
            if text[3:4] != "-":
                return Reply(int(text[:3]), lines)

    def ask(self, line: str | bytes) -> Reply:
        self.send(line)
        return self.reply()

    def closed_by_server(self) -> bool:
        return self.file.readline() == b""

    def data(self, raw: bytes) -> None:
        """Send a message after ``354``, dot-stuffed, with the final dot."""
        body = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        stuffed = [b"." + ln if ln.startswith(b".") else ln
                   for ln in body.split(b"\r\n")]
        if stuffed and stuffed[-1] == b"":
            stuffed.pop()
        self.sock.sendall(b"\r\n".join(stuffed) + b"\r\n.\r\n")

    def hello(self, lmtp: bool = False) -> Reply:
        assert self.reply().code == 220
        return self.ask(("LHLO" if lmtp else "EHLO") + " client.example")


def mail(to: str, *, text: str = "The key still does not work.",
         message_id: str = "<r1@customer.example>",
         sender: str = CUSTOMER, extra: str = "") -> bytes:
    """A reply as a person's mail client writes it."""
    return (f"From: Ines Varga <{sender}>\r\n"
            f"To: {to}\r\n"
            f"Subject: Re: Licence key never arrived\r\n"
            f"Message-ID: {message_id}\r\n"
            f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
            f"{extra}"
            f"MIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n"
            f"\r\n{text}\r\n").encode()


def open_case(rt: Runtime, *, slug: str = "northwind") -> int:
    """A store (if missing) and a case opened in it; the case id."""
    now = rt.clock.now()
    with transaction(rt.sessions) as s:
        if s.query(m.Store).filter_by(slug=slug).first() is None:
            store = m.Store(slug=slug, name="Northwind Audio",
                            sender_address="help@northwind-audio.example",
                            created_at=now)
            store.members.append(m.TeamMember(address=MERCHANT, name="Desk"))
            s.add(store)
            s.flush()
        case = rt.service.open_case(
            s, store_slug=slug, order_ref="NW-2207",
            customer_address=CUSTOMER, customer_name="Ines Varga",
            subject="Licence key never arrived",
            content=Content.typed("My key never came.", source="api"))
        return case.id


def address(rt: Runtime, case_id: int, party: Party = Party.CUSTOMER) -> str:
    return rt.signer.reply_address(case_id, party)


def kept(served: Served) -> list[bytes]:
    """The raw mails the gateway kept, oldest first (a large one is read
    from its file)."""
    with served.rt.sessions() as s:
        rows = s.query(m.RawMail).order_by(m.RawMail.id)
        return [bytes(rawstore.data_of(row, served.rt.settings.files_dir))
                for row in rows]


def messages(rt: Runtime, case_id: int) -> list[str]:
    """The texts on the case's timeline, oldest first."""
    with rt.sessions() as s:
        rows = s.query(m.Message).filter_by(case_id=case_id).order_by(
            m.Message.id)
        return [row.new_text for row in rows]


def send(port: int, to: str, raw: bytes,
         sender: str = CUSTOMER) -> Reply:
    """One whole SMTP transaction; the answer to the final dot."""
    with Wire(port) as wire:
        wire.hello()
        assert wire.ask(f"MAIL FROM:<{sender}>").code == 250
        assert wire.ask(f"RCPT TO:<{to}>").code == 250
        assert wire.ask("DATA").code == 354
        wire.data(raw)
        return wire.reply()
