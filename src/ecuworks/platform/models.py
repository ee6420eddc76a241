"""The platform's tables (SQLAlchemy 2 declarative). Alembic migrations create them.

One source of truth per fact: the execution journal (SQLite beside the data directory,
:mod:`ecuworks.execute.journal`) keeps every step of a session; the history keeps one
record per job and links to the journal session by its id, never copying its steps.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "HistoryRecord",
    "Interface",
    "LoginAttempt",
    "OutboxEntry",
    "Setting",
    "User",
    "WebSession",
]


class Base(DeclarativeBase):
    """The declarative base of every platform table."""


class User(Base):
    """A person who logs in: ``admin``, ``technician`` or ``viewer``."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebSession(Base):
    """A browser's login: the cookie holds a random token, the table only its hash."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    """A token the CLI (or a script) sends as ``Authorization: Bearer``; stored hashed."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class LoginAttempt(Base):
    """One login attempt, for rate limiting by name and by client address."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ok: Mapped[bool] = mapped_column(Boolean)


class AuditEntry(Base):
    """Who did what to which VIN, append-only."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    user: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    vin: Mapped[str | None] = mapped_column(String(17), index=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class Interface(Base):
    """A vehicle interface (VCI) the interface manager knows: its vehicle link URL and
    the URL of its management API (reservation, status)."""

    __tablename__ = "interfaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    vci_url: Mapped[str] = mapped_column(String(256))
    admin_url: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class HistoryRecord(Base):
    """One thing done to a vehicle, in a hash chain per VIN (append-only).

    ``hash`` is SHA-256 over the previous record's hash and this record's canonical JSON
    (:func:`ecuworks.platform.history.record_hash`); a changed or removed record breaks
    every hash after it.
    """

    __tablename__ = "history"
    __table_args__ = (UniqueConstraint("vin", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    vin: Mapped[str] = mapped_column(String(17), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    user: Mapped[str] = mapped_column(String(64))
    workstation: Mapped[str] = mapped_column(String(128))
    journal_session: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(Text)
    svt_before: Mapped[dict[str, list[str]] | None] = mapped_column(JSON)
    svt_after: Mapped[dict[str, list[str]] | None] = mapped_column(JSON)
    data: Mapped[dict[str, object]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class OutboxEntry(Base):
    """A history record waiting to be sent to the central backend, or sent.

    Written in the same transaction as its record, so no record escapes the sync; the
    row stays after sending (``sent_at``), for the sync status.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("history.event_id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[str | None] = mapped_column(Text)


class Setting(Base):
    """One of the workstation's settings (the backend's URL and credential)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
