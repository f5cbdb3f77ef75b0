"""The tables. The schema itself is made by the Alembic migrations beside
this module; these classes must stay in step with them (a test compares).

Times are stored as timezone-aware UTC. Enumerations are stored as their
string values so that the database stays readable without the code.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# SQLite keeps integer primary keys only as INTEGER; PostgreSQL gets BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC datetime on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: Any, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    pass


class Store(Base):
    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    sender_address: Mapped[str] = mapped_column(String(320))
    auto_reply_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_reply_text: Mapped[str] = mapped_column(Text, default="")
    auto_close_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    idle_seconds: Mapped[int] = mapped_column(Integer, default=14 * 86400)
    warning_lead_seconds: Mapped[int] = mapped_column(Integer, default=3 * 86400)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    members: Mapped[list[TeamMember]] = relationship(
        back_populates="store", cascade="all, delete-orphan",
        order_by="TeamMember.id")


class TeamMember(Base):
    """An address allowed to answer as the merchant (and notified)."""

    __tablename__ = "team_members"
    __table_args__ = (UniqueConstraint("store_id", "address"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    address: Mapped[str] = mapped_column(String(320))  # stored lower-case
    name: Mapped[str] = mapped_column(String(200), default="")

    store: Mapped[Store] = relationship(back_populates="members")


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        # The sweep asks for "awaiting customer, idle since before T".
        Index("ix_cases_state_activity", "state", "last_activity_at"),
        Index("ix_cases_store_state", "store_id", "state"),
        # The sweep asks per store: "awaiting customer, (not) warned, idle
        # since before T"; each of its queries is one range of this index.
        Index("ix_cases_sweep", "store_id", "state", "warned_at",
              "last_activity_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    order_ref: Mapped[str] = mapped_column(String(100))
    customer_address: Mapped[str] = mapped_column(String(320))
    customer_name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(String(500))
    state: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    unread: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_activity_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # When the auto-close warning of the current idle stretch went out;
    # cleared by any activity, so each stretch gets at most one.
    warned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    staff_joined: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set by a permanent bounce: mail to the customer stops.
    customer_unreachable: Mapped[bool] = mapped_column(Boolean, default=False)

    store: Mapped[Store] = relationship()
    events: Mapped[list[Event]] = relationship(
        back_populates="case", order_by="Event.id")
    messages: Mapped[list[Message]] = relationship(
        back_populates="case", order_by="Message.id")


class RawMail(Base):
    """Every inbound mail as received, one row per envelope recipient.

    ``status`` is where processing ended: ``filed``, ``held``, ``empty``
    (a person's reply with nothing to read), ``ignored`` (automated,
    recorded only), ``duplicate`` (another copy of a message the case
    already has: the same Message-ID and text from the same side; a
    redelivery of the same bytes finds the existing row instead),
    ``quarantined`` (accepted but not applied; see
    ``error``), ``postmaster`` (for postmaster@, kept for a person, in no
    case), ``received`` only inside the transaction that files it.
    """

    __tablename__ = "raw_mails"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idem_key: Mapped[str] = mapped_column(String(64), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    envelope_from: Mapped[str] = mapped_column(String(320), default="")
    envelope_to: Mapped[str] = mapped_column(String(320))
    peer: Mapped[str] = mapped_column(String(100), default="")
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="received",
                                        index=True)
    outcome: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    # The last column: SQLite can then size a large mail's row with
    # zeroblob() without building the whole row in memory, which it must
    # do for a blob with columns after it (intake.rawstore).
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # A case's messages in order: the timeline, and the ends of the
        # thread each notification's References are built from, as one
        # index range however long the case has run.
        Index("ix_messages_case_time", "case_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    raw_mail_id: Mapped[int | None] = mapped_column(ForeignKey("raw_mails.id"))
    party: Mapped[str] = mapped_column(String(16))
    author_address: Mapped[str] = mapped_column(String(320), default="")
    author_name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(String(998), default="")
    new_text: Mapped[str] = mapped_column(Text, default="")
    removed_text: Mapped[str] = mapped_column(Text, default="")
    full_text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str] = mapped_column(String(998), default="", index=True)
    # human, auto-reply, bounce, feedback-report, list, loop
    kind: Mapped[str] = mapped_column(String(32), default="human")
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    defects: Mapped[list[str]] = mapped_column(JSON, default=list)
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    hold_reason: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16), default="email")  # or api, cli
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    case: Mapped[Case] = relationship(back_populates="messages")
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", order_by="Attachment.id")


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    filename: Mapped[str] = mapped_column(String(500), default="")
    safe_name: Mapped[str] = mapped_column(String(255), default="")
    declared_type: Mapped[str] = mapped_column(String(255), default="")
    content_type: Mapped[str] = mapped_column(String(255), default="")
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    kept: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    inline: Mapped[bool] = mapped_column(Boolean, default=False)
    content_id: Mapped[str] = mapped_column(String(998), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    message: Mapped[Message] = relationship(back_populates="attachments")


class Event(Base):
    """One entry of a case's timeline."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    party: Mapped[str] = mapped_column(String(16), default="system")
    author_address: Mapped[str] = mapped_column(String(320), default="")
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    outbox_id: Mapped[int | None] = mapped_column(BigId)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    case: Mapped[Case] = relationship(back_populates="events")
    message: Mapped[Message | None] = relationship()


class Outbox(Base):
    """A mail to send, written in the transaction of the change behind it.

    ``status``: queued → sent; queued → deferred → … → sent or failed;
    sent → bounced when a report comes back; suppressed when the budget or
    an unreachable recipient stopped it before any attempt.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        # The budget counts recent mail to one address, compared without
        # case; an index on the lowered address serves that as one range.
        Index("ix_outbox_recipient_time", func.lower(text("recipient")),
              "created_at"),
        # A case's mails in order (see ``ix_messages_case_time``).
        Index("ix_outbox_case_time", "case_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    template: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(320))
    party: Mapped[str] = mapped_column(String(16))
    automated: Mapped[bool] = mapped_column(Boolean, default=True)
    message_id: Mapped[str] = mapped_column(String(998), default="", index=True)
    envelope_from: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(String(998), default="")
    data: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    deadline: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # A worker that claims a mail holds it until this moment; a worker that
    # died mid-send lets the claim lapse instead of leaving the mail stuck.
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str] = mapped_column(String(64), default="")
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    dsn_status: Mapped[str] = mapped_column(String(16), default="")
    dsn_diagnostic: Mapped[str] = mapped_column(Text, default="")
