"""aiosmtpd's SMTP and LMTP, narrowed to what a mail gateway must promise.

What aiosmtpd leaves to us, added here and nowhere else:

- every reply it words itself gets our wording and an enhanced status
  code (``replies.translate``), the positive ones too (RFC 2034 3);
- after DATA, LMTP answers once per accepted recipient even when aiosmtpd
  refuses the whole message (RFC 2033 4.2), or the client loses count;
- sessions are counted overall and per client address, and one over a
  limit is greeted with ``421`` and closed (RFC 5321 3.8);
- the session timeout measures silence, not length: every byte received
  restarts it, so a large message on a slow line is not cut off, the
  clock stops while we store a message, and the client hears ``421``
  before the connection closes (RFC 5321 4.5.3.2);
- the line limit is the configured one, not aiosmtpd's 1001 bytes;
- every ``421`` closes the session after it is sent, as RFC 5321 3.8
  says it does (aiosmtpd leaves that to whoever words it).

It reaches into aiosmtpd's private ``_handle_client``, ``_timeout_cb``,
``_reset_timeout`` and ``_call_handler_hook``; tests/intake pin the
behaviour we rely on.
"""

from __future__ import annotations

import logging
from typing import Any, AnyStr

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from casemail.config import ListenerSettings
from casemail.intake import replies
from casemail.intake.limits import ConnectionLimits, client_of

log = logging.getLogger(__name__)

IDENT = "casemail"

# aiosmtpd's replies that end a DATA transaction: in LMTP each stands for
# one reply per recipient.
_DATA_END = ("552 Error: Too much mail data", "500 Line too long")


class _Guarded(SMTP):
    """The additions shared by SMTP and LMTP (see the module docstring)."""

    def __init__(self, handler: Any, *, settings: ListenerSettings,
                 limits: ConnectionLimits, **kwargs: Any) -> None:
        # Read by SMTP.__init__ to size its stream reader.
        self.line_length_limit = settings.max_line_length
        super().__init__(handler, data_size_limit=settings.max_message_size,
                         enable_SMTPUTF8=True, hostname=settings.hostname,
                         ident=IDENT, timeout=settings.timeout, **kwargs)
        self.limits = limits
        self._sizes = {"message": settings.max_message_size,
                       "line": settings.max_line_length}
        self._client: str | None = None
        self._refusal: str | None = None
        self._working = 0

    # -- counting sessions --------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        after_starttls = self._original_transport is not None
        super().connection_made(transport)
        if after_starttls:
            return  # the same session, now encrypted
        client = client_of(self.session.peer if self.session else None)
        self._refusal = self.limits.admit(client)
        if self._refusal is None:
            self._client = client

    def connection_lost(self, error: Exception | None) -> None:
        if self._client is not None:
            self.limits.release(self._client)
            self._client = None
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        if self._refusal is not None:
            await self.push(self._refusal)
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()

    # -- silence ------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._reset_timeout()
        super().data_received(data)

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        # While we work on an answer the client is waiting, not silent.
        self._working += 1
        try:
            return await super()._call_handler_hook(command, *args)
        finally:
            self._working -= 1
            if self.transport is not None:
                self._reset_timeout()

    def _timeout_cb(self) -> None:
        if self.transport is None:
            return
        if self._working:
            self._reset_timeout()
            return
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(replies.IDLE_TIMEOUT.encode() + b"\r\n")
        super()._timeout_cb()

    # -- wording ------------------------------------------------------------

    async def push(self, status: AnyStr) -> None:
        text = status.decode("utf-8", "replace") \
            if isinstance(status, bytes) else str(status)
        ours = replies.translate(text, sizes=self._sizes)
        if ours != text:
            log.debug("%s: replaced %r with %r", self._client, text, ours)
        for _ in range(self._answers_for(text)):
            await super().push(ours)
        if ours.startswith("421") and self.transport is not None:
            self.transport.close()

    def _answers_for(self, text: str) -> int:
        return 1


class GatewaySMTP(_Guarded):
    pass


class GatewayLMTP(_Guarded, LMTP):
    def _answers_for(self, text: str) -> int:
        if not text.startswith(_DATA_END) or self.envelope is None:
            return 1
        return max(1, len(self.envelope.rcpt_tos))
