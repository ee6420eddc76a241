"""The vehicle history: everything ever done to a car, one hash-chained record per job.

Each VIN has its own chain: record ``seq`` n carries the hash of record n-1
(``prev_hash``, 64 zeros for the first) and its own ``hash``, SHA-256 over ``prev_hash``
and the record's canonical JSON (:func:`record_hash`). The table is append-only in the
database itself (triggers), and :func:`verify_chain` recomputes every hash, so a record
changed or removed behind ecuworks' back is found and named.

Records of a programming session link to the journal session by its id
(``journal_session``): the journal keeps the steps, the history what came of them.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ecuworks.errors import DatabaseError
from ecuworks.platform.db import Database
from ecuworks.platform.models import HistoryRecord, OutboxEntry

__all__ = [
    "GENESIS",
    "KINDS",
    "ChainBreak",
    "Entry",
    "VehicleSummary",
    "append",
    "event_hash",
    "event_of",
    "record_hash",
    "search",
    "utc",
    "vehicle_records",
    "verify_chain",
]

GENESIS: Final = "0" * 64
KINDS: Final = (
    "identify",
    "plan",
    "program",
    "code",
    "expert-coding",
    "enable",
    "retrofit",
    "replace",
    "diag",
    "dtc-read",
)
_APPEND_RETRIES: Final = 5
_LINKS: Final = frozenset({"prev_hash", "hash"})  # an event's chain links, not hashed

Svt = Mapping[str, Sequence[str]]


@dataclass(frozen=True, kw_only=True)
class Entry:
    """What a job hands to :func:`append`.

    Attributes:
        vin: the vehicle.
        kind: one of :data:`KINDS`.
        user: who did it.
        workstation: where (host name or the web UI's address).
        outcome: ``done``, ``failed``, ``refused`` or ``read``.
        summary: one line for the list.
        svt_before: the SVT identified before the job (None when not read).
        svt_after: the SVT read back after it.
        journal_session: the journal session's id, for jobs that ran a plan.
        data: anything else (the plan's estimate, the DTCs read, the report).
    """

    vin: str
    kind: str
    user: str
    workstation: str
    outcome: str
    summary: str
    svt_before: Svt | None = None
    svt_after: Svt | None = None
    journal_session: int | None = None
    data: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ChainBreak:
    """Where a VIN's chain stops verifying, and why."""

    vin: str
    seq: int
    why: str


def _svt(svt: Svt | None) -> dict[str, list[str]] | None:
    return None if svt is None else {str(k): sorted(map(str, v)) for k, v in svt.items()}


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; SQLite gives stored times back without their zone (they are UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _canonical(record: HistoryRecord) -> dict[str, Any]:
    return {
        "event_id": record.event_id,
        "vin": record.vin,
        "seq": record.seq,
        "kind": record.kind,
        "at": utc(record.at).isoformat(timespec="microseconds"),
        "user": record.user,
        "workstation": record.workstation,
        "journal_session": record.journal_session,
        "outcome": record.outcome,
        "summary": record.summary,
        "svt_before": record.svt_before,
        "svt_after": record.svt_after,
        "data": record.data,
    }


def record_hash(prev_hash: str, record: HistoryRecord) -> str:
    """SHA-256 (hex) over the previous hash and the record's canonical JSON."""
    return event_hash(prev_hash, _canonical(record))


def event_of(record: HistoryRecord) -> dict[str, Any]:
    """The record as the event a workstation sends to the backend.

    Its canonical JSON fields plus ``prev_hash`` and ``hash``, so that the receiver
    recomputes the hash with :func:`event_hash` and links the chain without the database.
    """
    return {**_canonical(record), "prev_hash": record.prev_hash, "hash": record.hash}


def event_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    """SHA-256 (hex) over ``prev_hash`` and the event's canonical JSON.

    The event's own ``prev_hash`` and ``hash`` are not part of what is hashed; every
    other key is. :func:`record_hash` is this over a record's canonical fields.
    """
    body = {k: v for k, v in event.items() if k not in _LINKS}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(prev_hash.encode() + b"\n" + text.encode()).hexdigest()


def append(database: Database, entry: Entry, *, at: datetime | None = None) -> HistoryRecord:
    """Append ``entry`` to its VIN's chain and return the stored record.

    Two workstations appending to one VIN at once: the unique (vin, seq) makes one of
    them retry on the new end of the chain, so the chain never forks.

    Raises:
        ValueError: an unknown kind.
        DatabaseError: the database failed, or the chain stayed contended.
    """
    if entry.kind not in KINDS:
        raise ValueError(f"unknown history kind {entry.kind!r}; one of {', '.join(KINDS)}")
    when = (at or datetime.now(UTC)).astimezone(UTC)
    for _ in range(_APPEND_RETRIES):
        try:
            with database.session() as session:
                return _append(session, entry, when)
        except DatabaseError as error:
            if not isinstance(error.__cause__, IntegrityError):
                raise
    raise DatabaseError(
        f"the history of {entry.vin} was appended to by others {_APPEND_RETRIES} times in a "
        "row while this record was written; try again"
    )


def _append(session: Session, entry: Entry, when: datetime) -> HistoryRecord:
    last = session.scalars(
        select(HistoryRecord)
        .where(HistoryRecord.vin == entry.vin)
        .order_by(HistoryRecord.seq.desc())
        .limit(1)
    ).first()
    record = HistoryRecord(
        event_id=str(uuid.uuid4()),
        vin=entry.vin,
        seq=1 if last is None else last.seq + 1,
        kind=entry.kind,
        at=when,
        user=entry.user,
        workstation=entry.workstation,
        journal_session=entry.journal_session,
        outcome=entry.outcome,
        summary=entry.summary,
        svt_before=_svt(entry.svt_before),
        svt_after=_svt(entry.svt_after),
        data=json.loads(json.dumps(dict(entry.data or {}), default=str)),
        prev_hash=GENESIS if last is None else last.hash,
        hash="",
    )
    record.hash = record_hash(record.prev_hash, record)
    session.add(record)
    session.flush()
    # In the same transaction: a record is never written without its way to the backend.
    session.add(OutboxEntry(event_id=record.event_id, created_at=when, attempts=0))
    session.flush()
    return record


def vehicle_records(database: Database, vin: str) -> list[HistoryRecord]:
    """Every record of ``vin``, oldest first."""
    with database.session() as session:
        return list(
            session.scalars(
                select(HistoryRecord).where(HistoryRecord.vin == vin).order_by(HistoryRecord.seq)
            )
        )


def verify_chain(database: Database, vin: str) -> ChainBreak | None:
    """Recompute ``vin``'s chain; None when every record verifies, else the first break."""
    prev = GENESIS
    for expected_seq, record in enumerate(vehicle_records(database, vin), start=1):
        if record.seq != expected_seq:
            return ChainBreak(vin, expected_seq, f"record {expected_seq} is missing")
        if record.prev_hash != prev:
            return ChainBreak(vin, record.seq, "it does not follow the record before it")
        if record_hash(prev, record) != record.hash:
            return ChainBreak(vin, record.seq, "its content differs from what was recorded")
        prev = record.hash
    return None


@dataclass(frozen=True)
class VehicleSummary:
    """One line of the vehicle list."""

    vin: str
    records: int
    last_at: datetime
    last_kind: str


def search(database: Database, text: str = "", *, limit: int = 100) -> list[VehicleSummary]:
    """Vehicles whose VIN, or any record's summary or user, contains ``text``; newest first."""
    like = f"%{text.strip()}%"
    with database.session() as session:
        matching = select(HistoryRecord.vin).where(
            or_(
                HistoryRecord.vin.ilike(like),
                HistoryRecord.summary.ilike(like),
                HistoryRecord.user.ilike(like),
            )
        )
        rows = session.execute(
            select(HistoryRecord.vin, func.count(), func.max(HistoryRecord.at))
            .where(HistoryRecord.vin.in_(matching))
            .group_by(HistoryRecord.vin)
            .order_by(func.max(HistoryRecord.at).desc())
            .limit(limit)
        ).all()
        summaries = []
        for vin, count, last_at in rows:
            kind = session.scalars(
                select(HistoryRecord.kind)
                .where(HistoryRecord.vin == vin)
                .order_by(HistoryRecord.seq.desc())
                .limit(1)
            ).one()
            summaries.append(VehicleSummary(vin, count, last_at, kind))
    return summaries
