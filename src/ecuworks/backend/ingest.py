"""History ingest: workstations' events into hash chains that never fork, lose or repeat.

A workstation sends its history records as events (:func:`ecuworks.platform.history.
event_of`) in batches. Each event is checked on its own, and the answer says which were
stored (``accepted``), which the backend already had (``duplicates``, by ``event_id``:
resending is always safe) and which it refused, and why (``rejected``).

The chains are per (workshop, sending credential, VIN): a workstation's database holds
one chain per VIN, and its sync sends it under its credential (the records' own
``workstation`` field says where each job ran; several workstations may share one
database). An event is stored only when its hash recomputes
(:func:`~ecuworks.platform.history.event_hash`) and it continues its chain: ``seq`` one
after the last stored, ``prev_hash`` the stored hash of that one
(:data:`~ecuworks.platform.history.GENESIS` for seq 1). A gap is refused with the missing
seq named and ``"retry": true``, so the sender resends from there, in order; every other
refusal is for good.

A batch is one transaction and one bulk insert, and its checks read one snapshot
(PostgreSQL's REPEATABLE READ; SQLite's writers take turns). Two requests racing with the
same events both pass the checks, but the unique constraints (``event_id``, and the
chain's seq) let only one commit; the other is rolled back and checked again, finding
duplicates. Under READ COMMITTED each query would see its own snapshot: the check for
duplicates could run before the other request commits and the chain's tail after it,
refusing every event as a fork.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import func, insert, select, tuple_
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from ecuworks.backend.accounts import Caller
from ecuworks.backend.models import Event
from ecuworks.errors import AccessDenied, DatabaseError
from ecuworks.platform.db import Database
from ecuworks.platform.history import GENESIS, event_hash, utc

__all__ = ["MAX_BATCH", "Answer", "Invalid", "batch_schema", "check_event", "ingest"]

MAX_BATCH: Final = 500
_RETRIES: Final = 5
# Transaction conflicts PostgreSQL asks the client to retry: serialization, deadlock.
_RETRY_SQLSTATES: Final = frozenset({"40001", "40P01"})
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_INT32: Final = 2**31
# SQLite has one writer: its batches queue here instead of failing on a busy snapshot.
_SQLITE_WRITER: Final = threading.Lock()

# Each key of an event, and what it must be: (types, max length for strings, nullable).
_FIELDS: Final[dict[str, tuple[type | tuple[type, ...], int | None, bool]]] = {
    "event_id": (str, 36, False),
    "vin": (str, 17, False),
    "seq": (int, None, False),
    "kind": (str, 32, False),
    "at": (str, 40, False),
    "user": (str, 64, False),
    "workstation": (str, 128, False),
    "journal_session": (int, None, True),
    "outcome": (str, 32, False),
    "summary": (str, None, False),
    "svt_before": (dict, None, True),
    "svt_after": (dict, None, True),
    "data": (dict, None, False),
    "prev_hash": (str, 64, False),
    "hash": (str, 64, False),
}
_KEYS: Final = frozenset(_FIELDS)
_JSON_TYPES: Final = {str: "string", int: "integer", dict: "object"}


def batch_schema() -> dict[str, object]:
    """The JSON schema of an ingest body, from :data:`_FIELDS`, for the OpenAPI schema: a
    client (and ``make fuzz``) sees the shape :func:`check_event` holds each event to."""
    properties: dict[str, object] = {}
    for key, (types, longest, nullable) in _FIELDS.items():
        kind = _JSON_TYPES[types] if isinstance(types, type) else "string"
        spec: dict[str, object] = {"type": [kind, "null"] if nullable else kind}
        if longest is not None:
            spec["maxLength"] = longest
        properties[key] = spec
    event = {"type": "object", "required": sorted(_FIELDS), "properties": properties}
    return {
        "type": "object",
        "required": ["events"],
        "properties": {"events": {"type": "array", "maxItems": MAX_BATCH, "items": event}},
    }


class Invalid(ValueError):
    """An event that cannot be stored; the message is the reason sent back."""


@dataclass
class Answer:
    """What became of each event of a batch (each list in the order sent)."""

    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The JSON answer of ``POST /api/v1/events``."""
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }


def _field_problem(key: str, value: object) -> str | None:
    types, longest, nullable = _FIELDS[key]
    if value is None:
        return None if nullable else f"{key} is missing (null)"
    if isinstance(value, bool) or not isinstance(value, types):
        return f"{key} has the wrong type ({type(value).__name__})"
    if isinstance(value, str):
        if "\x00" in value:
            return f"{key} holds a NUL character"
        if longest is not None and len(value) > longest:
            return f"{key} is longer than {longest} characters"
    if isinstance(value, int) and not -_INT32 <= value < _INT32:
        return f"{key} is out of range"
    return None


def _at(text: str) -> datetime:
    """The event's time; it must be written as the workstation's history writes it."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(f"at {text!r} is no ISO 8601 time") from None
    if moment.tzinfo is None or utc(moment).isoformat(timespec="microseconds") != text:
        raise Invalid(f"at {text!r} is not in UTC with microseconds, as the history writes it")
    return utc(moment)


def check_event(raw: object) -> dict[str, Any]:
    """The row to store for one sent event.

    Raises:
        Invalid: the event is malformed or altered.
    """
    if not isinstance(raw, dict):
        raise Invalid("an event is a JSON object")
    if raw.keys() != _KEYS:
        missing, extra = sorted(_KEYS - raw.keys()), sorted(raw.keys() - _KEYS)
        raise Invalid(
            "the event's fields differ from a history record's: "
            + "; ".join(
                part
                for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unknown {', '.join(extra)}" if extra else "",
                )
                if part
            )
        )
    for key, value in raw.items():
        if (problem := _field_problem(key, value)) is not None:
            raise Invalid(problem)
    if raw["seq"] < 1:
        raise Invalid(f"seq {raw['seq']} is below 1")
    if not (_HEX64.fullmatch(raw["prev_hash"]) and _HEX64.fullmatch(raw["hash"])):
        raise Invalid("prev_hash and hash are 64 lower-case hex digits")
    if event_hash(raw["prev_hash"], raw) != raw["hash"]:
        raise Invalid(
            "its hash does not match its content: the record was altered after it was "
            "written; verify the workstation's history ('ecuworks history verify')"
        )
    return {**raw, "at": _at(raw["at"])}


def _retriable(error: DatabaseError) -> bool:
    cause = error.__cause__
    if isinstance(cause, IntegrityError):
        return True
    return isinstance(cause, DBAPIError) and getattr(cause.orig, "sqlstate", None) in (
        _RETRY_SQLSTATES
    )


def ingest(database: Database, caller: Caller, events: Sequence[object]) -> Answer:
    """Store a workstation's batch of events: one transaction, one bulk insert.

    Args:
        database: the backend's database.
        caller: the sending workstation.
        events: the decoded JSON events, at most :data:`MAX_BATCH`.

    Returns:
        What became of each event.

    Raises:
        AccessDenied: the caller is no workstation (403) or the batch is too large (413).
        DatabaseError: the database failed, or other requests kept racing this one.
    """
    if not caller.is_workstation or caller.workshop_id is None:
        raise AccessDenied("only a workstation sends history events", status=403)
    if len(events) > MAX_BATCH:
        raise AccessDenied(
            f"a batch holds at most {MAX_BATCH} events, this one {len(events)}; send smaller "
            "batches",
            status=413,
        )
    checked: list[tuple[int, dict[str, Any] | Invalid]] = []
    for index, raw in enumerate(events):
        try:
            checked.append((index, check_event(raw)))
        except Invalid as error:
            checked.append((index, error))
    lock = _SQLITE_WRITER if database.dialect == "sqlite" else None
    for _ in range(_RETRIES):
        try:
            if lock is None:
                return _store(database, caller, events, checked)
            with lock:
                return _store(database, caller, events, checked)
        except DatabaseError as error:
            if not _retriable(error):
                raise
    raise DatabaseError(
        f"the batch of {caller.name!r} raced other requests for the same chains "
        f"{_RETRIES} times; send it again"
    )


def _store(
    database: Database,
    caller: Caller,
    events: Sequence[object],
    checked: list[tuple[int, dict[str, Any] | Invalid]],
) -> Answer:
    # index -> (status, reason); a duplicate's "reason" is the index of its first copy
    verdicts: dict[int, tuple[str, str]] = {}
    rows: dict[int, dict[str, Any]] = {}
    for index, row in checked:
        if isinstance(row, Invalid):
            verdicts[index] = ("rejected", str(row))
        else:
            rows[index] = row
    now = datetime.now(UTC)
    with database.session() as session:
        if database.dialect == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        fresh = _without_duplicates(session, caller, rows, verdicts)
        accepted = _link(session, caller, fresh, verdicts)
        for index, (status, original) in list(verdicts.items()):
            if status == "duplicate" and original:  # a copy within the batch
                fate = verdicts[int(original)]
                verdicts[index] = ("duplicate", "") if fate[0] == "accepted" else fate
        if accepted:
            session.execute(
                insert(Event),
                [
                    {
                        **row,
                        "workshop_id": caller.workshop_id,
                        "source": caller.name,
                        "received_at": now,
                    }
                    for row in accepted
                ],
            )
    return _answer(events, verdicts)


def _without_duplicates(
    session: Session,
    caller: Caller,
    rows: dict[int, dict[str, Any]],
    verdicts: dict[int, tuple[str, str]],
) -> dict[int, dict[str, Any]]:
    """The rows whose event_id the backend does not hold yet (nor an earlier row)."""
    ids = [row["event_id"] for row in rows.values()]
    stored: dict[str, tuple[int | None, str]] = {
        event_id: (workshop, the_hash)
        for event_id, workshop, the_hash in session.execute(
            select(Event.event_id, Event.workshop_id, Event.hash).where(Event.event_id.in_(ids))
        )
    }
    fresh: dict[int, dict[str, Any]] = {}
    first: dict[str, int] = {}  # event_id -> the index that sent it first in this batch
    for index, row in rows.items():
        held = stored.get(row["event_id"])
        if held is None:
            stored[row["event_id"]] = (caller.workshop_id, row["hash"])
            first[row["event_id"]] = index
            fresh[index] = row
        elif held == (caller.workshop_id, row["hash"]):
            # Sent twice in this batch: the copy shares the first one's fate, once decided.
            verdicts[index] = ("duplicate", str(first.get(row["event_id"], "")))
        else:
            verdicts[index] = (
                "rejected",
                "another event with this event_id is stored already; an event_id names one "
                "record only",
            )
    return fresh


def _tails(session: Session, caller: Caller, vins: set[str]) -> dict[str, tuple[int, str]]:
    """The last stored (seq, hash) of each of the caller's chains for ``vins``.

    Two queries that each walk the chain index (workshop, source, vin, seq): a join of
    the two would let a planner without statistics scan the table for every chain.
    """
    mine = (Event.workshop_id == caller.workshop_id, Event.source == caller.name)
    ends = session.execute(
        select(Event.vin, func.max(Event.seq)).where(*mine, Event.vin.in_(vins)).group_by(Event.vin)
    ).all()
    if not ends:
        return {}
    found = session.execute(
        select(Event.vin, Event.seq, Event.hash).where(
            *mine, tuple_(Event.vin, Event.seq).in_([(vin, seq) for vin, seq in ends])
        )
    )
    return {vin: (seq, the_hash) for vin, seq, the_hash in found}


def _link(
    session: Session,
    caller: Caller,
    rows: dict[int, dict[str, Any]],
    verdicts: dict[int, tuple[str, str]],
) -> list[dict[str, Any]]:
    """The rows that continue their chains, in chain order; the others get their reason."""
    chains: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for index, row in rows.items():
        chains[row["vin"]].append((index, row))
    tails = _tails(session, caller, set(chains)) if chains else {}
    accepted: list[dict[str, Any]] = []
    for vin, chain in chains.items():
        seq, last_hash = tails.get(vin, (0, GENESIS))
        for index, row in sorted(chain, key=lambda item: item[1]["seq"]):
            reason = _break(vin, seq, last_hash, row)
            if reason is None:
                verdicts[index] = ("accepted", "")
                accepted.append(row)
                seq, last_hash = row["seq"], row["hash"]
            else:
                gap = row["seq"] > seq + 1  # sent again in order, it may continue the chain
                verdicts[index] = ("held" if gap else "rejected", reason)
    return accepted


def _break(vin: str, seq: int, last_hash: str, row: Mapping[str, Any]) -> str | None:
    """Why ``row`` does not continue a chain that ends at ``seq`` with ``last_hash``."""
    if row["seq"] <= seq:
        return (
            f"seq {row['seq']} of VIN {vin} holds another event here: the workstation's "
            "chain forks from the one received; verify its history"
        )
    if row["seq"] > seq + 1:
        return (
            f"seq {seq + 1} of VIN {vin} is missing (the backend holds up to {seq}); send "
            f"the chain in order from seq {seq + 1}"
        )
    if row["prev_hash"] != last_hash:
        return (
            f"its prev_hash is not the hash of seq {seq} of VIN {vin} as received: the "
            "chain forks here; verify the workstation's history"
        )
    return None


def _answer(events: Sequence[object], verdicts: dict[int, tuple[str, str]]) -> Answer:
    answer = Answer()
    for index in sorted(verdicts):
        status, reason = verdicts[index]
        raw = events[index]
        sent = raw.get("event_id") if isinstance(raw, dict) else None
        event_id = sent if isinstance(sent, str) else None
        if status == "accepted" and event_id is not None:
            answer.accepted.append(event_id)
        elif status == "duplicate" and event_id is not None:
            answer.duplicates.append(event_id)
        else:
            answer.rejected.append(
                {"event_id": event_id, "index": index, "reason": reason, "retry": status == "held"}
            )
    return answer
