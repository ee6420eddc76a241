"""Reading the received history: events page by page, and every chain verified again.

The events table holds each event's canonical fields, so :func:`canonical` gives back
exactly what the workstation hashed, and :func:`verify_chains` recomputes every hash from
the table alone: an event changed or removed behind the backend's back is found and named.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ecuworks.backend.models import Event
from ecuworks.platform.db import Database
from ecuworks.platform.history import GENESIS, event_hash, utc

__all__ = ["ChainBreak", "canonical", "event_json", "list_events", "verify_chains"]


def canonical(event: Event) -> dict[str, Any]:
    """The stored event's canonical fields, as its hash covers them."""
    return {
        "event_id": event.event_id,
        "vin": event.vin,
        "seq": event.seq,
        "kind": event.kind,
        "at": utc(event.at).isoformat(timespec="microseconds"),
        "user": event.user,
        "workstation": event.workstation,
        "journal_session": event.journal_session,
        "outcome": event.outcome,
        "summary": event.summary,
        "svt_before": event.svt_before,
        "svt_after": event.svt_after,
        "data": event.data,
    }


def event_json(event: Event) -> dict[str, Any]:
    """The stored event as sent (canonical fields and links) plus when it was received."""
    return {
        **canonical(event),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        "received_at": utc(event.received_at).isoformat(),
    }


def _scoped(workshop_id: int | None, vin: str | None, workstation: str | None) -> list[Any]:
    conditions: list[Any] = []
    if workshop_id is not None:
        conditions.append(Event.workshop_id == workshop_id)
    if vin:
        conditions.append(Event.vin == vin.strip().upper())
    if workstation:
        conditions.append(Event.source == workstation)
    return conditions


def list_events(
    database: Database,
    *,
    workshop_id: int | None,
    vin: str | None = None,
    workstation: str | None = None,
    after: int = 0,
    limit: int = 500,
) -> tuple[list[dict[str, Any]], int | None]:
    """Stored events in the order received, after the cursor ``after``.

    Returns:
        The events (as :func:`event_json`) and the cursor of the next page (None at the
        end).
    """
    with database.session() as session:
        found = list(
            session.scalars(
                select(Event)
                .where(Event.id > after, *_scoped(workshop_id, vin, workstation))
                .order_by(Event.id)
                .limit(limit)
            )
        )
    cursor = found[-1].id if len(found) == limit else None
    return [event_json(e) for e in found], cursor


@dataclass(frozen=True)
class ChainBreak:
    """Where a stored chain stops verifying, and why."""

    workshop_id: int
    workstation: str
    vin: str
    seq: int
    why: str


def _chain_breaks(
    events: Iterator[Event],
) -> Iterator[tuple[tuple[int, str, str], ChainBreak | None]]:
    """Each chain's key and its first break (None when it verifies); events in chain order."""
    key: tuple[int, str, str] | None = None
    prev, expected, broken = GENESIS, 1, False
    for event in events:
        here = (event.workshop_id, event.source, event.vin)
        if here != key:
            if key is not None and not broken:
                yield key, None
            key, prev, expected, broken = here, GENESIS, 1, False
        if broken:
            continue
        why = None
        if event.seq != expected:
            why = f"event {expected} is missing"
        elif event.prev_hash != prev:
            why = "it does not follow the event before it"
        elif event_hash(prev, canonical(event)) != event.hash:
            why = "its content differs from what was received"
        if why is not None:
            broken = True
            yield here, ChainBreak(*here, event.seq, why)
        prev, expected = event.hash, expected + 1
    if key is not None and not broken:
        yield key, None


def verify_chains(
    database: Database,
    *,
    workshop_id: int | None,
    vin: str | None = None,
    workstation: str | None = None,
) -> tuple[int, int, list[ChainBreak]]:
    """Recompute every stored chain in scope: (chains, events, the first break of each)."""
    query = (
        select(Event)
        .where(*_scoped(workshop_id, vin, workstation))
        .order_by(Event.workshop_id, Event.source, Event.vin, Event.seq)
        .execution_options(yield_per=1000)
    )
    chains, breaks = 0, []
    with database.session() as session:
        events = session.scalars(query)
        counted = _Counting(iter(events))
        for _key, found in _chain_breaks(counted):
            chains += 1
            if found is not None:
                breaks.append(found)
    return chains, counted.count, breaks


class _Counting(Iterator[Event]):
    """Counts the events that pass through."""

    def __init__(self, inner: Iterator[Event]) -> None:
        self._inner = inner
        self.count = 0

    def __next__(self) -> Event:
        event = next(self._inner)
        self.count += 1
        return event
