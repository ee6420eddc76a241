"""The central backend's tables (SQLAlchemy 2 declarative); its own Alembic migrations
(``backend/migrations``) create them, recorded in ``backend_alembic_version``.

The backend's tables live beside the platform's in one database if an operator wants
that: the table names that could clash (users, tokens, sessions) carry a ``backend_``
prefix, and the migrations keep their own version table.

``events`` is the workshops' vehicle history as received: one hash chain per
(workshop, workstation, VIN), append-only in the database itself (triggers), each row
holding every field its hash covers, so the chain is verified again from the table alone.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "Event",
    "FscIssued",
    "User",
    "UserSession",
    "UserToken",
    "VinGrant",
    "Workshop",
    "WorkstationCredential",
]

# 64-bit row ids on PostgreSQL (events grow without bound); SQLite's rowid is 64-bit anyway,
# and only INTEGER PRIMARY KEY is its rowid.
RowId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """The declarative base of every backend table."""


class Workshop(Base):
    """A workshop: its workstations send history and obtain codes for its vehicles."""

    __tablename__ = "workshops"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class User(Base):
    """A person of the backend: ``admin`` (every workshop) or ``analyst`` (one workshop)."""

    __tablename__ = "backend_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    workshop_id: Mapped[int | None] = mapped_column(ForeignKey("workshops.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class UserToken(Base):
    """A user's API token (``Authorization: Bearer``), stored as SHA-256 of the secret."""

    __tablename__ = "backend_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("backend_users.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UserSession(Base):
    """A browser login to the report pages: the cookie holds the secret, this its hash."""

    __tablename__ = "backend_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("backend_users.id", ondelete="CASCADE"))
    csrf: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WorkstationCredential(Base):
    """A workstation's token, issued by an admin; revoked ones stay (``revoked_at``).

    A workstation keeps its name across new tokens (the chains are keyed by it), so the
    name is unique only among the credentials not revoked (checked when adding).
    """

    __tablename__ = "workstation_credentials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workshop_id: Mapped[int] = mapped_column(ForeignKey("workshops.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class VinGrant(Base):
    """A workshop may obtain codes for a VIN (17 characters) or every VIN with a prefix,
    for one application (``app_id``) or all (None)."""

    __tablename__ = "vin_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workshop_id: Mapped[int] = mapped_column(ForeignKey("workshops.id"), index=True)
    vin_pattern: Mapped[str] = mapped_column(String(17))
    app_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Event(Base):
    """One vehicle history record received from a workstation (append-only).

    The columns are the record's canonical fields
    (:func:`ecuworks.platform.history.event_of`), so ``hash`` is recomputed from the row.
    """

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("workshop_id", "source", "vin", "seq", name="uq_events_chain_seq"),
        Index("ix_events_workshop_at", "workshop_id", "at"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    workshop_id: Mapped[int] = mapped_column(ForeignKey("workshops.id"))
    # The credential that sent it: the chain's key. ``workstation`` is the record's own
    # field (where the job ran): several workstations may share one database, whose
    # sync sends all of their records under one credential.
    source: Mapped[str] = mapped_column(String(128))
    workstation: Mapped[str] = mapped_column(String(128))
    vin: Mapped[str] = mapped_column(String(17))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    user: Mapped[str] = mapped_column(String(64))
    journal_session: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(Text)
    svt_before: Mapped[dict[str, list[str]] | None] = mapped_column(JSON)
    svt_after: Mapped[dict[str, list[str]] | None] = mapped_column(JSON)
    data: Mapped[dict[str, object]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FscIssued(Base):
    """An enabling code the backend issued: to which workstation, for what."""

    __tablename__ = "fsc_issued"
    __table_args__ = (Index("ix_fsc_issued_workshop_at", "workshop_id", "at"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    workshop_id: Mapped[int] = mapped_column(ForeignKey("workshops.id"))
    workstation: Mapped[str] = mapped_column(String(128))
    vin: Mapped[str] = mapped_column(String(17))
    app_id: Mapped[int] = mapped_column(Integer)
    upgrade_index: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
