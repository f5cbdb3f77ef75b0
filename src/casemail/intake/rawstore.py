"""The raw mail as received, its idempotency key, and the quarantine.

Every accepted mail is kept byte for byte, one row per envelope recipient,
in the same transaction as what it did to its case. The row's key is the
sha256 of the received bytes plus the recipient: the Message-ID is no key,
since one mail to two cases shares it and some mail has none.

A mail that was accepted but could not be applied is *quarantined*: its
row is kept with the error and a count of attempts. The gateway tries it
again on every pass until ``max_processing_attempts``; after that it waits
for a person (``casemail quarantine list``, ``casemail reprocess ID``).
Mail for the postmaster is kept here too, for a person and for no case
(``casemail postmaster``). Nothing is ever deleted here.

A mail of ``IN_FILE_FROM`` bytes or more is kept as a file instead,
beside the attachments (``mime/filestore``: named by its sha256, written
and synced before the transaction, by the thread that read the mail);
its row holds no bytes and names the file by ``sha256``. Writing a
100 KB mail into the database cost the transaction a fifth of its time,
all of it inside the write lock every other mail waits for. Read a
row's bytes with ``data_of``.

On SQLite a large mail kept in its row (its file could not be written)
is written last, in pieces: an INSERT or UPDATE
of a row builds the whole row in memory, after the driver's own copy of
the bytes, and every later UPDATE of the row (its status) builds it
again — a 25 MB mail cost four times its size more. The row is kept
with no bytes until the transaction commits; then its data is sized
and written into it piece by piece, in that same transaction. Sizing
costs no memory only because ``data`` is the row's last column: a
zeroblob with columns after it is built out in full, twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import event, func, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from casemail.db import models as m
from casemail.db.rows import insert_row
from casemail.mime.filestore import read_file, store_file

log = logging.getLogger(__name__)

QUARANTINED = "quarantined"
DUPLICATE = "duplicate"
POSTMASTER = "postmaster"

# Mails at least this large are kept as files (see above); a 2 KB
# reply costs its row less than a file would.
IN_FILE_FROM = 32 * 1024

# SQLite: mails at least this large are written in pieces of PIECE.
WRITE_LATE_FROM = 256 * 1024
PIECE = 1024 * 1024


@dataclass(frozen=True)
class Envelope:
    mail_from: str  # "" for the null reverse-path
    recipient: str
    peer: str = ""


def idempotency_key(raw: bytes, recipient: str) -> str:
    # Per recipient: one mail to two cases is two deliveries, and the
    # Message-ID is no key (shared across recipients, or missing).
    digest = hashlib.sha256(raw)
    digest.update(b"\0" + recipient.strip().lower().encode())
    return digest.hexdigest()


def for_postmaster(address: str, domain: str) -> bool:
    """Whether ``address`` is the postmaster of ``domain``: RFC 5321 4.5.1
    requires taking its mail, in any case of the local part, and the bare
    ``postmaster`` without a domain as well (4.1.1.3)."""
    local, at, rest = address.strip().strip("<>").lower().rpartition("@")
    if not at:
        return rest == "postmaster"
    return local == "postmaster" and rest == domain.lower()


def find(s: Session, key: str, *, lock: bool = False) -> m.RawMail | None:
    """The row kept for ``key``; ``lock`` holds it for this transaction,
    so two instances never apply the same quarantined mail together."""
    query = select(m.RawMail).where(m.RawMail.idem_key == key)
    if lock:
        query = query.with_for_update()
    return s.scalars(query).first()


def exists(s: Session, key: str) -> bool:
    return s.scalar(select(m.RawMail.id).where(m.RawMail.idem_key == key)) \
        is not None


def keep(s: Session, raw: bytes, env: Envelope, key: str,
         now: dt.datetime, *, status: str = "received", outcome: str = "",
         case_id: int | None = None, in_file: str = "") -> m.RawMail:
    """Write the raw mail in this transaction (``db.rows``: it has an id).

    ``status``, ``outcome``, ``case_id``: what the caller expects this
    transaction to make of it, written now so that, when it does, the
    row needs no second statement (it commits with the rest or not at
    all; the caller updates it when the outcome differs).

    ``in_file``: the sha256 of ``raw``, already written as a file
    (``store_in_file``); the row then holds no bytes."""
    late = not in_file and s.get_bind().dialect.name == "sqlite" \
        and len(raw) >= WRITE_LATE_FROM
    row = insert_row(
        s, m.RawMail,
        idem_key=key, sha256=in_file or hashlib.sha256(raw).hexdigest(),
        envelope_from=env.mail_from[:320], envelope_to=env.recipient[:320],
        peer=env.peer[:100], received_at=now, size=len(raw),
        data=b"" if late or in_file else raw, status=status, outcome=outcome,
        case_id=case_id, error="", attempts=0)
    if late:
        # What this session reads of the row is the mail, as stored.
        set_committed_value(row, "data", raw)
        event.listen(s, "before_commit",
                     lambda session: _write_late(session, row.id, raw),
                     once=True)
    return row


def _write_late(s: Session, row_id: int, raw: bytes) -> None:
    """Write the data of a row kept empty, once nothing else will
    change the row: the last flush, a zero blob of the right size (the
    row is built once more, with zeros), then the bytes in pieces."""
    s.flush()
    table = m.RawMail.__table__
    s.execute(update(table).where(table.c.id == row_id)
              .values(data=func.zeroblob(len(raw))))
    rowid = s.scalar(text("SELECT rowid FROM raw_mails WHERE id = :id"),
                     {"id": row_id})
    db = s.connection().connection.driver_connection
    view = memoryview(raw)
    with db.blobopen(table.name, "data", rowid) as blob:
        for at in range(0, len(view), PIECE):
            blob.write(view[at:at + PIECE])


def store_in_file(files_dir: Path, raw: bytes) -> str:
    """Write ``raw`` as a file if it is kept as one: its sha256, for
    ``keep``; "" when it is kept in its row (small, or the file could
    not be written: the row then holds it, as it always could)."""
    if len(raw) < IN_FILE_FROM:
        return ""
    try:
        return store_file(files_dir, raw)
    except OSError as exc:
        log.warning("raw mail of %d bytes kept in the database: %s",
                    len(raw), exc)
        return ""


def data_of(row: m.RawMail, files_dir: Path) -> bytes:
    """The bytes of a raw mail, from its row or from its file."""
    if row.data or not row.size:
        return row.data
    return read_file(files_dir, row.sha256)


def envelope_of(row: m.RawMail) -> Envelope:
    return Envelope(row.envelope_from, row.envelope_to, row.peer)


def mark_quarantined(row: m.RawMail, error: str) -> None:
    row.status = QUARANTINED
    row.error = error[:4000]
    row.attempts = (row.attempts or 0) + 1


def may_retry(row: m.RawMail, max_attempts: int) -> bool:
    """Whether the gateway (or a redelivery) may apply it again by itself;
    past the limit only a person's ``reprocess`` does."""
    return row.status == QUARANTINED and row.attempts < max_attempts


def for_the_postmaster(s: Session, *, limit: int = 500) -> list[m.RawMail]:
    """Mail kept for the postmaster, newest first."""
    query = select(m.RawMail).where(m.RawMail.status == POSTMASTER)
    return list(s.scalars(query.order_by(m.RawMail.id.desc()).limit(limit)))


def quarantined(s: Session, *, retryable_below: int | None = None,
                limit: int = 500) -> list[m.RawMail]:
    """Quarantined rows, oldest first; with ``retryable_below``, only
    those with fewer attempts than that."""
    query = select(m.RawMail).where(m.RawMail.status == QUARANTINED)
    if retryable_below is not None:
        query = query.where(m.RawMail.attempts < retryable_below)
    return list(s.scalars(query.order_by(m.RawMail.id).limit(limit)))
