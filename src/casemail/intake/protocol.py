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
- DATA is received into one buffer, unstuffed as it arrives (RFC 5321
  4.5.2), instead of aiosmtpd's list of lines joined at the end: a 25 MB
  mail then costs about its own size while it comes in, not four times
  that (``smtp_DATA`` below); and it is read in large pieces, not one
  read per line, with the same content and answers (``_receive``);
- every ``421`` closes the session after it is sent, as RFC 5321 3.8
  says it does (aiosmtpd leaves that to whoever words it);
- a plain ``<local@domain>`` path in MAIL and RCPT is read by one
  regular expression; aiosmtpd runs the email package's full header
  grammar on every path, a tenth of what a small mail cost us. Anything
  else (quoted local parts, comments, ``<>``, source routes) still goes
  to aiosmtpd's reading, and a property test holds the two to the same
  answer (``_getaddr``).

It reaches into aiosmtpd's private ``_handle_client``, ``_timeout_cb``,
``_getaddr``,
``_reset_timeout``, ``_call_handler_hook``, ``_reader``, ``_writer``,
``_handle_hooks`` and ``_set_post_data_state``; tests/intake pin the
behaviour we rely on.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from typing import Any, AnyStr

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import MISSING, SMTP

from casemail.config import ListenerSettings
from casemail.intake import replies
from casemail.intake.limits import ConnectionLimits, client_of

log = logging.getLogger(__name__)

IDENT = "casemail"

# aiosmtpd's replies that end a DATA transaction (worded by
# ``replies.translate``): in LMTP each stands for one reply per recipient.
_TOO_MUCH = "552 Error: Too much mail data"
_TOO_LONG = "500 Line too long (see RFC 5321 4.5.3.1.6)"
_DATA_END = (_TOO_MUCH, "500 Line too long")
# Bytes of short pieces of DATA gathered before they are counted.
_TOGETHER = 64 * 1024


# RFC 5321 4.1.2: a Path whose Mailbox is a Dot-string at a dot-atom
# domain, then the parameters. What is not this goes to aiosmtpd.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_PLAIN_PATH = re.compile(
    rf"[ \t]*<({_DOT_ATOM}@{_DOT_ATOM})>[ \t]*([^ \t].*|)\Z")


def _first_refusal(lines: list[bytes], run: int, size: int,
                   limit: int | None, longest: int) -> str | None:
    """The refusal that reading line by line gives for the first line of
    ``lines`` to pass a limit, or None.

    ``lines`` is a piece split at CRLF: the first continues a line of
    ``run`` bytes, the last is not finished yet; ``size`` counts the
    whole lines before them.
    """
    for index in range(len(lines) - 1):
        text = run + len(lines[index])
        run = 0
        # Without its CRLF over the limit, a line overruns the stream
        # reader, which refuses it before its size is counted.
        if text > longest:
            return _TOO_LONG
        size += text + 2
        if limit and size > limit:
            return _TOO_MUCH
        if text + 2 > longest:
            return _TOO_LONG
    if run + len(lines[-1]) > longest:
        return _TOO_LONG  # it will overrun, whatever comes after
    return None


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

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _PLAIN_PATH.match(arg)
        if match is None:
            try:
                return super()._getaddr(arg)
            except Exception:
                # The email package's grammar trips over some broken
                # paths (a lone "<" or '"'): a syntax error, not ours.
                return None, None
        address, rest = match.group(1), match.group(2)
        local = address.rpartition("@")[0]
        if self.local_part_limit and len(local) > self.local_part_limit:
            return None, None
        return address, rest

    # -- the message ------------------------------------------------------

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() \
                or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        content, refusal = await self._receive()
        if content is None:
            # RFC 5321 4.2.5: a refusal waits for the end of the data. It
            # is pushed before the envelope goes: LMTP counts recipients.
            if refusal is not None:
                await self.push(refusal)
            self._set_post_data_state()
            return
        # One object for both: the handler reads original_content.
        self.envelope.original_content = self.envelope.content = content
        status = MISSING
        if "DATA" in self._handle_hooks:
            status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    async def _receive(self) -> tuple[bytes | None, str | None]:
        """The message up to the lone dot, dot-unstuffed (RFC 5321
        4.5.2), or the refusal to give once it has all arrived.

        Lines end at CRLF only, as in aiosmtpd: a bare LF stays inside
        its line, and a line that begins after one is not unstuffed.
        The data is read in pieces that end at the next ".\\r\\n" or hold
        what the reader has, not a line at a time; lines are counted
        in each piece, and the answer is the one line-by-line reading
        gives. Once a limit is passed, the rest is read and dropped, so
        the memory a refused message holds is a piece at most. None for
        both when the connection went away before the dot.
        """
        # BytesIO, not bytearray: its getvalue() hands over the buffer
        # itself, where bytes(bytearray) would copy the whole mail once
        # more at the moment it is all in memory.
        mail: io.BytesIO | None = io.BytesIO()
        limit = self.data_size_limit
        longest = self.line_length_limit
        size = 0  # the whole lines so far, as sent (still stuffed)
        run = 0  # the line under way so far; 0 at the start of a line
        # A CR that ended a piece may be half of a CRLF: it goes to the
        # front of the next piece, so every CRLF is seen whole.
        held = b""
        waiting: list[bytes] = []  # pieces read but not yet counted
        waiting_size = 0
        refusal: str | None = None
        while self.transport is not None:
            try:
                piece = await self._reader.readuntil(b".\r\n")
                found = True
            except asyncio.CancelledError:
                log.info("%s: connection lost during DATA", self._client)
                self._writer.close()
                raise
            except asyncio.LimitOverrunError as over:
                # No ".\r\n" within the reader's limit, or one beyond
                # it: ``consumed`` bytes precede any that may yet begin,
                # and are all in the buffer, so read() returns them.
                piece = await self._reader.read(over.consumed)
                found = False
            if held:
                piece, held = held + piece, b""
            end = False
            if found:
                # The lone dot only where a line begins (what is waiting
                # ends with a CRLF); anywhere else ".\r\n" ends a line.
                end = piece.endswith(b"\r\n.\r\n") or (
                    len(piece) == 3 and (run == 0 or bool(waiting)))
                if end:
                    piece = piece[:-3]
                elif refusal is None and waiting_size < _TOGETHER:
                    # Text has a dot at the end of many a line: such
                    # pieces are short, and counted together.
                    waiting.append(piece)
                    waiting_size += len(piece)
                    continue
            elif piece.endswith(b"\r"):
                held, piece = b"\r", piece[:-1]
            if waiting:
                waiting.append(piece)
                piece = b"".join(waiting)
                waiting, waiting_size = [], 0
            if refusal is None:
                lines = piece.split(b"\r\n")
                tail = len(lines[-1])  # the line left unfinished
                if len(lines) == 1:
                    tail += run
                    done = 0
                else:
                    done = run + len(piece) - tail  # lines ended here
                # A bound first: only a piece that may pass a limit is
                # gone through line by line.
                if (limit and size + done > limit) \
                        or run + max(map(len, lines)) + 2 > longest:
                    refusal = _first_refusal(lines, run, size, limit,
                                             longest)
                size += done
                if refusal is None:
                    assert mail is not None
                    # A stuffed dot starts a line: after each CRLF, and
                    # at the front when the piece starts a line.
                    kept = piece.replace(b"\r\n.", b"\r\n")
                    if run == 0 and kept.startswith(b"."):
                        mail.write(memoryview(kept)[1:])
                    else:
                        mail.write(kept)
                else:
                    mail = None
                run = tail
            else:
                crlf = piece.rfind(b"\r\n")
                run = run + len(piece) if crlf < 0 else len(piece) - crlf - 2
            if end:
                break
        else:
            return None, None  # closed before the end: nothing to answer
        if mail is None:
            return None, refusal
        return mail.getvalue(), None

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
