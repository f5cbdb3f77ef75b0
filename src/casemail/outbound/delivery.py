"""The delivery worker: the only code that talks to the outbound relay.

Each pass claims the mails that are due, sends them one after another over
one reused relay connection, and records every result:

    queued/deferred ──250──▶ sent
          │ 4xx, timeout, refused or dropped connection
          ▼
       deferred (attempts+1, next attempt after an exponential backoff
          │      with jitter) … until the deadline, then ▶ failed
          │ 5xx to the transaction (RFC 5321 4.2.1: permanent)
          ▼
        failed

A claim (``claimed_until``/``claimed_by``) is taken in a short transaction
before anything is sent, so two workers never send the same mail; a claim
whose worker died lapses and the mail is tried again. Results are written
by a background writer as soon as the relay answers, so under load many
results share one commit while the send loop keeps going.

Relay errors are mapped here, at this one boundary: anything in setting up
the connection (refused, TLS, greeting, login) is the relay's trouble and
temporary; a reply to MAIL, RCPT or DATA is judged by its code.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from dataclasses import dataclass

import aiosmtplib
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from casemail.clock import Clock
from casemail.config import Settings
from casemail.db.engine import transaction
from casemail.db.models import Outbox
from casemail.errors import DeliveryError

log = logging.getLogger(__name__)

DUE_STATUSES = ("queued", "deferred")
# A pass loads the bytes of at most this much mail at once (at least one
# mail, however big), so a batch of large attachments cannot exhaust memory.
MAX_BATCH_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Claimed:
    id: int
    message_id: str
    envelope_from: str
    recipient: str
    attempts: int
    deadline: dt.datetime | None
    data: bytes = b""


class DeliveryWorker:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings,
                 clock: Clock, worker_id: str, *,
                 rng: random.Random | None = None) -> None:
        self.sessions = sessions
        self.settings = settings
        self.relay = settings.relay
        self.clock = clock
        self.worker_id = worker_id[:64]
        self._rng = rng or random.Random()
        self._smtp: aiosmtplib.SMTP | None = None
        self._pending: list[dict[str, object]] = []
        self._writer: asyncio.Task[None] | None = None

    # -- the loop ------------------------------------------------------------

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; wait only when nothing is due."""
        try:
            while not stop.is_set():
                try:
                    attempted = await self.run_once()
                except Exception:
                    log.exception("delivery pass failed; trying again")
                    attempted = 0
                if attempted:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(),
                                           self.relay.poll_interval)
        finally:
            await self.close()

    async def run_once(self) -> int:
        """Claim the due mails, send them, record each result; how many."""
        batch = await asyncio.to_thread(self._claim)
        if not batch:
            return 0
        done = 0
        try:
            await self._check_connection()
            relay_down: DeliveryError | None = None
            for mail in batch:
                relay_down = await self._deliver(mail, relay_down)
                done += 1
        finally:
            # Mails never tried (we were stopped) go back at once instead
            # of waiting for their claim to lapse.
            await self._flush()
            if done < len(batch):
                await asyncio.to_thread(
                    self._release, [m.id for m in batch[done:]])
        return done

    async def close(self) -> None:
        """Say goodbye to the relay and write what is still pending."""
        await self._flush()
        smtp, self._smtp = self._smtp, None
        if smtp is None or not smtp.is_connected:
            return
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()

    # -- one mail ------------------------------------------------------------

    async def _deliver(self, mail: Claimed, relay_down: DeliveryError | None
                       ) -> DeliveryError | None:
        """Send one mail and queue its result; the relay's state after."""
        error = relay_down
        if error is None:
            try:
                smtp = await self._connection()
                error = await self._transaction(smtp, mail)
            except DeliveryError as exc:
                # Refused, TLS or login trouble: every further mail of the
                # pass would wait out the same timeout, so they share it.
                error = relay_down = exc
        self._record(self._outcome(mail, error))
        return relay_down

    async def _transaction(self, smtp: aiosmtplib.SMTP,
                           mail: Claimed) -> DeliveryError | None:
        try:
            await smtp.sendmail(mail.envelope_from, [mail.recipient],
                                mail.data)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            return _by_code(refused.code, refused.message)
        except aiosmtplib.SMTPResponseException as exc:
            return _by_code(exc.code, exc.message)
        except ValueError as exc:  # an address SMTP cannot carry
            return DeliveryError(f"unsendable address: {exc}", permanent=True)
        except (aiosmtplib.SMTPException, OSError) as exc:
            # XXX: a connection lost after our final "." but before the
            # relay's 250 leaves us not knowing whether it took the mail;
            # it is retried, so the recipient may get it twice.
            await self._drop_connection()
            return DeliveryError(f"connection lost: {_describe(exc)}",
                                 permanent=False)
        return None

    def _outcome(self, mail: Claimed,
                 error: DeliveryError | None) -> dict[str, object]:
        now = self.clock.now()
        row: dict[str, object] = {
            "id": mail.id, "attempts": mail.attempts + 1, "sent_at": None,
            "next_attempt_at": now, "claimed_until": None, "claimed_by": "",
            "last_error": error.reason if error else ""}
        if error is None:
            log.info("%s sent to %s", mail.message_id, mail.recipient)
            return {**row, "status": "sent", "sent_at": now}
        if error.permanent:
            log.warning("%s failed for %s: %s", mail.message_id,
                        mail.recipient, error.reason)
            return {**row, "status": "failed"}
        if mail.deadline is not None and now >= mail.deadline:
            log.warning("%s failed for %s: deadline passed after %d "
                        "attempts: %s", mail.message_id, mail.recipient,
                        mail.attempts + 1, error.reason)
            return {**row, "status": "failed",
                    "last_error": f"gave up at the deadline: {error.reason}"}
        later = now + self._backoff(mail.attempts)
        if mail.deadline is not None:
            later = min(later, mail.deadline)  # one last try at the deadline
        log.info("%s deferred for %s until %s: %s", mail.message_id,
                 mail.recipient, later.isoformat(), error.reason)
        return {**row, "status": "deferred", "next_attempt_at": later}

    def _backoff(self, attempts: int) -> dt.timedelta:
        # Exponential, capped; the jitter only shortens the wait, so the
        # cap holds and workers that failed together do not retry together.
        base = min(self.relay.retry_max,
                   self.relay.retry_base * 2 ** min(attempts, 32))
        return dt.timedelta(seconds=base * self._rng.uniform(0.8, 1.0))

    # -- the relay connection --------------------------------------------------

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        relay = self.relay
        smtp = aiosmtplib.SMTP(
            hostname=relay.host, port=relay.port, timeout=relay.timeout,
            use_tls=relay.security == "tls",
            start_tls=relay.security == "starttls",
            username=relay.username, password=relay.password)
        try:
            await smtp.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise DeliveryError(
                f"relay {relay.host}:{relay.port} unavailable: "
                f"{_describe(exc)}", permanent=False) from exc
        log.debug("connected to relay %s:%s", relay.host, relay.port)
        self._smtp = smtp
        return smtp

    async def _check_connection(self) -> None:
        """Drop a kept connection the relay closed while we were idle."""
        if self._smtp is None or not self._smtp.is_connected:
            return
        try:
            await self._smtp.noop()
        except (aiosmtplib.SMTPException, OSError):
            await self._drop_connection()

    async def _drop_connection(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    # -- the database (off the event loop) -------------------------------------

    def _claim(self) -> list[Claimed]:
        now = self.clock.now()
        due = (select(Outbox.id, Outbox.message_id, Outbox.envelope_from,
                      Outbox.recipient, Outbox.attempts, Outbox.deadline,
                      func.length(Outbox.data))
               .where(Outbox.status.in_(DUE_STATUSES),
                      Outbox.next_attempt_at <= now,
                      or_(Outbox.claimed_until.is_(None),
                          Outbox.claimed_until < now))
               .order_by(Outbox.next_attempt_at, Outbox.id)
               .limit(self.relay.batch_size)
               # PostgreSQL: concurrent workers skip each other's rows.
               # SQLite renders nothing here; BEGIN IMMEDIATE serialises.
               .with_for_update(skip_locked=True))
        with transaction(self.sessions) as s:
            rows = _within_bytes(s.execute(due).all())
            if not rows:
                return []
            ids = [r.id for r in rows]
            ttl = dt.timedelta(seconds=self.relay.timeout * (3 * len(ids) + 2))
            s.execute(update(Outbox).where(Outbox.id.in_(ids))
                      .values(claimed_until=now + ttl,
                              claimed_by=self.worker_id),
                      execution_options={"synchronize_session": False})
            data = {i: d for i, d in s.execute(
                select(Outbox.id, Outbox.data).where(Outbox.id.in_(ids)))}
        return [Claimed(r.id, r.message_id, r.envelope_from, r.recipient,
                        r.attempts, r.deadline, data[r.id]) for r in rows]

    def _store(self, results: list[dict[str, object]]) -> None:
        with transaction(self.sessions) as s:
            s.execute(update(Outbox), results)

    def _release(self, ids: list[int]) -> None:
        with transaction(self.sessions) as s:
            s.execute(update(Outbox)
                      .where(Outbox.id.in_(ids),
                             Outbox.claimed_by == self.worker_id)
                      .values(claimed_until=None, claimed_by=""),
                      execution_options={"synchronize_session": False})

    # -- the result writer -------------------------------------------------------

    def _record(self, result: dict[str, object]) -> None:
        # XXX: between the relay's 250 and this result's commit lies a short
        # window (one commit under load): if the worker dies inside it, the
        # claim lapses and the mail is sent again. At-least-once is the
        # price of never losing a mail; the claim keeps the window this small.
        self._pending.append(result)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())

    async def _write_pending(self) -> None:
        while self._pending:
            results, self._pending = self._pending, []
            await asyncio.to_thread(self._store, results)

    async def _flush(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer
        if self._pending:
            await self._write_pending()


def _within_bytes(rows: list) -> list:  # type: ignore[type-arg]
    """The leading rows whose mails fit in MAX_BATCH_BYTES (at least one)."""
    kept, total = [], 0
    for row in rows:
        total += row[-1] or 0
        if kept and total > MAX_BATCH_BYTES:
            break
        kept.append(row)
    return kept


def _by_code(code: int, message: str) -> DeliveryError:
    # RFC 5321 4.2.1: 5yz is a permanent negative reply, 4yz transient.
    reason = f"{code} {' '.join(message.split())}"
    return DeliveryError(reason, permanent=500 <= code < 600, code=code)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
