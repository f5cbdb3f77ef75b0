"""A small local SMTP server that keeps every mail it receives in a Maildir.

The demo, and anyone trying casemail on one machine, points the relay
settings at it instead of a real outbound server: each accepted mail
becomes one file under ``<maildir>/new`` that any mail client (or
``less``) can open. It accepts everything and relays nothing.
"""

from __future__ import annotations

import logging
import mailbox
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger(__name__)


class _MaildirHandler:
    def __init__(self, maildir: mailbox.Maildir) -> None:
        self.maildir = maildir

    async def handle_DATA(self, server: SMTP, session: Session,
                          envelope: Envelope) -> str:
        data = envelope.original_content or b""
        # The envelope is lost once stored; keep it where a reader looks,
        # the way a final delivery adds Return-Path (RFC 5321 4.4).
        head = (f"Return-Path: <{envelope.mail_from or ''}>\r\n"
                f"X-Sink-Recipients: {', '.join(envelope.rcpt_tos)}\r\n")
        key = self.maildir.add(head.encode() + data)
        log.info("%s stored as %s for %s", _message_id(data), key,
                 ", ".join(envelope.rcpt_tos))
        return "250 2.0.0 Stored"


def _message_id(data: bytes) -> str:
    for line in data.split(b"\r\n\r\n", 1)[0].splitlines():
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode("ascii", "replace")
    return "(no Message-ID)"


class _Controller(Controller):
    def _trigger_server(self) -> None:
        # With port 0 the system picks one; learn it before the readiness
        # probe connects to it.
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class MaildirSink:
    """``start()`` it, point the relay at ``host``/``port``, ``stop()`` it."""

    def __init__(self, maildir: Path, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.maildir_path = Path(maildir)
        self.host = host
        self._port = port
        self.maildir = mailbox.Maildir(self.maildir_path, create=True)
        self._controller: _Controller | None = None

    @property
    def port(self) -> int:
        if self._controller is not None:
            return int(self._controller.port)
        return self._port

    def start(self) -> None:
        handler = _MaildirHandler(self.maildir)
        self._controller = _Controller(
            handler, hostname=self.host, port=self._port,
            server_hostname="casemail-sink", data_size_limit=0)
        self._controller.start()
        log.info("mail sink on %s:%s storing into %s", self.host, self.port,
                 self.maildir_path)

    def stop(self) -> None:
        if self._controller is None:
            return
        self._controller.stop()
        self._port = self.port
        self._controller = None

    def messages(self) -> list[Any]:
        """The stored mails (``mailbox.MaildirMessage``), in no set order."""
        return [self.maildir[k] for k in sorted(self.maildir.keys())]

    def __enter__(self) -> MaildirSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

