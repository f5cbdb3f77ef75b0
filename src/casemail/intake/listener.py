"""The SMTP and LMTP listener: protocol in, verdict out.

An aiosmtpd handler, served from the event loop that runs the rest of
casemail. It checks each recipient at ``RCPT`` — mail for no case is
refused there, so no bounce ever goes to a possibly forged sender — and
hands ``DATA`` to the pipeline in a worker thread, answering only once the
pipeline has committed. SMTP answers a message once (the worst outcome
wins); LMTP answers once per recipient (RFC 2033 4.2), which aiosmtpd's
LMTP class leaves to the handler. The protocol's own limits and wording
live in ``intake.protocol``; the TCP listeners offer STARTTLS and AUTH
when configured, the unix socket (reachable only through the file
system's permissions) neither.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session as SmtpSession

from casemail.cases.threading import Route
from casemail.config import ListenerSettings
from casemail.intake import rawstore, replies, tls
from casemail.intake.limits import (
    ConnectionLimits,
    header_too_big,
    sender_refusal,
)
from casemail.intake.masking import mask_address, quiet_protocol_log
from casemail.intake.batching import GroupCommit
from casemail.intake.pipeline import Envelope, Filing, Outcome, Pipeline
from casemail.intake.protocol import GatewayLMTP, GatewaySMTP
from casemail.runtime import Runtime

log = logging.getLogger(__name__)

# When outcomes differ across recipients, SMTP can give only one answer:
# anything temporary makes the sender retry the whole message (the
# recipients already filed are then found as duplicates).
_SEVERITY = ["failed", "filed", "held", "empty", "postmaster",
             "quarantined", "ignored", "duplicate", "refused"]


class Handler:
    def __init__(self, runtime: Runtime, pipeline: Pipeline, *,
                 lmtp: bool = False,
                 group_commit: GroupCommit | None = None) -> None:
        self.rt = runtime
        self.pipeline = pipeline
        self.lmtp = lmtp
        # Shared by every listener of one process (``start_listeners``).
        self.group_commit = group_commit or GroupCommit(pipeline)

    # -- greeting and sender ------------------------------------------------

    async def handle_EHLO(self, server: SMTP, session: SmtpSession,
                          envelope: SmtpEnvelope, hostname: str,
                          responses: list[str]) -> list[str]:
        """aiosmtpd's EHLO (and LHLO) lines, with what it does but does
        not say: it answers pipelined commands in order (RFC 2920), and
        every reply carries an enhanced code (RFC 2034)."""
        session.host_name = hostname  # this hook's duty in aiosmtpd
        *lines, last = responses
        return [*lines, "250-PIPELINING", "250-ENHANCEDSTATUSCODES", last]

    async def handle_MAIL(self, server: SMTP, session: SmtpSession,
                          envelope: SmtpEnvelope, address: str,
                          mail_options: list[str]) -> str:
        refusal = sender_refusal(address, smtputf8=envelope.smtp_utf8)
        if refusal is not None:
            log.info("MAIL from %s refused: %s", _peer(session), refusal[:9])
            return refusal
        # What aiosmtpd does when no hook answers, with our wording.
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return replies.SENDER_OK

    # -- recipients ---------------------------------------------------------

    async def handle_RCPT(self, server: SMTP, session: SmtpSession,
                          envelope: SmtpEnvelope, address: str,
                          rcpt_options: list[str]) -> str:
        limit = self.rt.settings.listener.max_recipients
        if len(envelope.rcpt_tos) >= limit:
            return replies.TOO_MANY_RECIPIENTS
        # RFC 5321 4.5.1: postmaster's mail is taken even without a domain.
        postmaster = rawstore.for_postmaster(address,
                                             self.rt.settings.reply_domain)
        if not postmaster and not self.rt.signer.is_ours(address):
            return self._invalid(session, replies.RELAY_DENIED)
        try:
            route = self.pipeline.known_route(address) \
                or await asyncio.to_thread(self.pipeline.route, address)
        except Exception as exc:
            answer = replies.for_error(exc, where="RCPT")
            log.info("RCPT %s from %s: %s", mask_address(address),
                     _peer(session), answer[:3])
            if answer.startswith("5"):
                return self._invalid(session, answer)
            return answer
        envelope.rcpt_tos.append(address)
        _routes(envelope)[address] = route
        return replies.RCPT_OK

    def _invalid(self, session: SmtpSession, answer: str) -> str:
        """``answer`` to a refused recipient, until the session has had
        too many: a client that keeps guessing reply addresses is cut off
        (421 closes the session, RFC 5321 3.8) instead of being answered
        at full speed for ever."""
        count = getattr(session, "casemail_invalid", 0) + 1
        session.casemail_invalid = count  # type: ignore[attr-defined]
        if count <= self.rt.settings.listener.max_invalid_recipients:
            return answer
        log.warning("%s: %s invalid recipients, closing the session",
                    _peer(session), count)
        return replies.TOO_MANY_INVALID

    # -- data ---------------------------------------------------------------

    async def handle_DATA(self, server: SMTP, session: SmtpSession,
                          envelope: SmtpEnvelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        refusal = header_too_big(raw, self.rt.settings.listener.max_header_size)
        if refusal is not None:
            log.info("DATA from %s: %s", _peer(session), refusal[:9])
            return self._answer([Outcome("refused", refusal)]
                                * len(envelope.rcpt_tos))
        try:
            filings = await asyncio.to_thread(
                self._read, raw, envelope, _peer(session))
            outcomes = await self.group_commit.file(filings)
        except Exception as exc:  # the pipeline never raises; belt and braces
            answer = replies.for_error(exc, where="DATA")
            outcomes = [Outcome("failed", answer)] * len(envelope.rcpt_tos)
        return self._answer(outcomes)

    def _answer(self, outcomes: list[Outcome]) -> str:
        if self.lmtp:  # one line per accepted recipient, in RCPT order
            return "\r\n".join(o.reply for o in outcomes)
        return _one_answer(outcomes)

    def _read(self, raw: bytes, envelope: SmtpEnvelope,
              peer: str) -> list[Filing]:
        """The mail read once, outside any transaction, and one filing of
        it for each recipient."""
        mail_from = envelope.mail_from or ""
        if mail_from == "<>":
            mail_from = ""
        routes = _routes(envelope)
        try:
            reading = self.pipeline.read(
                raw, mail_from, [routes[r] for r in envelope.rcpt_tos])
        except Exception:  # the pipeline reads again and quarantines
            reading = None
        return [Filing(raw, Envelope(mail_from, rcpt, peer), routes[rcpt],
                       reading) for rcpt in envelope.rcpt_tos]

    async def handle_exception(self, error: Exception) -> str:
        return replies.for_error(error, where="session")


def _routes(envelope: SmtpEnvelope) -> dict[str, Route]:
    routes = getattr(envelope, "casemail_routes", None)
    if routes is None:
        routes = {}
        envelope.casemail_routes = routes  # type: ignore[attr-defined]
    return routes


def _one_answer(outcomes: list[Outcome]) -> str:
    if not outcomes:
        return replies.NO_THREAD
    return min(outcomes, key=lambda o: _SEVERITY.index(o.status)
               if o.status in _SEVERITY else 0).reply


def _peer(session: SmtpSession) -> str:
    peer = session.peer
    if isinstance(peer, tuple):
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "local")


def smtp_factory(runtime: Runtime, handler: Handler, *, lmtp: bool,
                 limits: ConnectionLimits, secure: bool = True) -> Any:
    """A protocol factory for one listener; ``secure`` offers STARTTLS
    and AUTH when they are configured."""
    lst = runtime.settings.listener
    cls = GatewayLMTP if lmtp else GatewaySMTP
    context = tls.server_context(lst) if secure else None
    auth = context is not None and tls.auth_enabled(lst)
    extra: dict[str, Any] = {}
    if auth:
        extra = {"authenticator": tls.Authenticator(lst.auth_users),
                 "auth_required": True, "auth_require_tls": True}

    def make() -> SMTP:
        return cls(handler, settings=lst, limits=limits,
                   tls_context=context, **extra)
    return make


@dataclass(frozen=True)
class Sockets:
    """Listening sockets bound before the event loop runs, so that
    several worker processes can serve the same ports."""

    smtp: socket.socket
    lmtp: socket.socket | None = None
    lmtp_unix: socket.socket | None = None

    def close(self) -> None:
        """Close this process's copies; forked workers keep their own."""
        for sock in (self.smtp, self.lmtp, self.lmtp_unix):
            if sock is not None:
                sock.close()


def bind_sockets(settings: ListenerSettings, workers: int = 1
                 ) -> list[Sockets]:
    """Bind what ``settings`` names, as ``start_listeners`` would: one
    set of sockets for each of ``workers`` processes.

    Several workers each get TCP sockets of their own on the same ports
    (SO_REUSEPORT), and the kernel spreads new connections over them.
    On one shared socket, a worker that wakes for a new connection takes
    every connection waiting (asyncio accepts them in a loop), so a mail
    server opening a burst of sessions would find them all in one worker
    and the others idle. The unix socket is shared: local delivery opens
    few sessions.
    """
    spread = workers > 1

    def tcp(port: int, *, first: bool = False) -> socket.socket:
        if spread and first and port:
            # SO_REUSEPORT would also join a port that another program of
            # this user already listens on with it: make sure the port is
            # free, as a single socket would.
            socket.create_server((settings.host, port)).close()
        return socket.create_server((settings.host, port), backlog=512,
                                    reuse_port=spread)

    # The ports first: one held by a gateway already running refuses
    # this start before its unix socket's path is taken over.
    first_smtp = tcp(settings.port, first=True)
    first_lmtp = (tcp(settings.lmtp_port, first=True)
                  if settings.lmtp_port is not None else None)
    unix = None
    if settings.lmtp_socket is not None:
        settings.lmtp_socket.unlink(missing_ok=True)
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.bind(str(settings.lmtp_socket))
        unix.listen(512)
        _open_to_the_mta(settings)
    each = [Sockets(first_smtp, first_lmtp, unix)]
    for _ in range(1, workers):  # on the ports the first one got
        each.append(Sockets(
            tcp(_port(first_smtp)),
            tcp(_port(first_lmtp)) if first_lmtp is not None else None,
            unix))
    return each


def for_worker(each: list[Sockets], n: int) -> Sockets:
    """Worker ``n``'s sockets; the other workers' TCP sockets, inherited
    at the fork, are closed in this process, so that connections the
    kernel gives them never wait on a worker that does not serve them."""
    mine = each[n]
    for k, other in enumerate(each):
        if k != n:
            for sock in (other.smtp, other.lmtp):
                if sock is not None:
                    sock.close()
    return mine


def close_all(each: list[Sockets]) -> None:
    """Close every worker's sockets in this process (the parent's stop)."""
    for sockets in each:
        sockets.close()


def _port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def _open_to_the_mta(settings: ListenerSettings) -> None:
    # The MTA runs as a user of its own and needs to write to the socket;
    # who may reach it at all is up to the folder it lives in (no looser
    # than the TCP listener on loopback).
    assert settings.lmtp_socket is not None
    settings.lmtp_socket.chmod(0o666)


async def start_listeners(
        runtime: Runtime, *,
        make_handler: Callable[..., Handler] = Handler,
        sockets: Sockets | None = None,
) -> list[asyncio.base_events.Server]:
    """Start SMTP (and LMTP, when configured) in the running event loop,
    on ``sockets`` when they were bound beforehand.

    The first server is always SMTP; all of them share one count of open
    sessions and one group commit. ``make_handler(runtime, pipeline,
    lmtp=..., group_commit=...)`` builds the handlers (the gateway wraps
    them to drain on stop).
    """
    quiet_protocol_log()
    loop = asyncio.get_running_loop()
    pipeline = Pipeline(runtime)
    group_commit = GroupCommit(pipeline)
    lst = runtime.settings.listener
    limits = ConnectionLimits(overall=lst.max_connections,
                              per_client=lst.max_connections_per_client)
    smtp = smtp_factory(runtime, make_handler(runtime, pipeline, lmtp=False,
                                              group_commit=group_commit),
                        lmtp=False, limits=limits)
    lmtp_handler = make_handler(runtime, pipeline, lmtp=True,
                                group_commit=group_commit)
    lmtp = smtp_factory(runtime, lmtp_handler, lmtp=True, limits=limits)
    local = smtp_factory(runtime, lmtp_handler, lmtp=True, limits=limits,
                         secure=False)
    if sockets is not None:
        servers = [await loop.create_server(smtp, sock=sockets.smtp)]
        if sockets.lmtp is not None:
            servers.append(await loop.create_server(lmtp, sock=sockets.lmtp))
        if sockets.lmtp_unix is not None:
            servers.append(await loop.create_unix_server(
                local, sock=sockets.lmtp_unix))
    else:
        servers = [await loop.create_server(smtp, lst.host, lst.port)]
        if lst.lmtp_port is not None:
            servers.append(await loop.create_server(lmtp, lst.host,
                                                    lst.lmtp_port))
        if lst.lmtp_socket is not None:
            lst.lmtp_socket.unlink(missing_ok=True)
            servers.append(await loop.create_unix_server(
                local, str(lst.lmtp_socket)))
            _open_to_the_mta(lst)
    for server in servers:
        for sock in server.sockets:
            log.info("listening on %s", sock.getsockname())
    # What exists by now (modules, the runtime, SQLAlchemy's mappers and
    # compiled statements) lives as long as the process: kept out of the
    # collector's full passes, which would otherwise walk all of it again
    # and again, each pass a pause for every session waiting.
    gc.freeze()
    return servers


def bound_port(server: asyncio.base_events.Server) -> int:
    return int(server.sockets[0].getsockname()[1])
