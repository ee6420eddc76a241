"""Sending the vehicle history to the central backend: the outbox, and the sync that
never loses a record.

Every history record is written with an outbox row in the same transaction
(:func:`ecuworks.platform.history.append`). The sync sends unsent rows in the order they
were written, in batches, to the backend's ``POST /api/v1/events``; a row is marked sent
only once the backend answered that it holds the event (accepted, or a duplicate of one it
already has), so a crash or an outage at any moment at worst sends an event twice, which
the backend recognises by its id. While the backend is away the workstation works on and
the rows wait, for as long as it takes; the sync retries with exponential backoff and
jitter, so many workstations coming back at once do not hammer it in step.

An event the backend rejects for good (its hash does not recompute) stays unsent with the
reason, shown by ``ecuworks sync status`` and the Data page: nothing is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from sqlalchemy import func, select, update

from ecuworks.errors import ConfigError, DatabaseError, LinkError
from ecuworks.platform.db import Database
from ecuworks.platform.history import event_of, utc
from ecuworks.platform.models import HistoryRecord, OutboxEntry, Setting

__all__ = [
    "BATCH",
    "Backoff",
    "Pushed",
    "SyncStatus",
    "SyncTarget",
    "SyncWorker",
    "configure",
    "push_once",
    "sync_status",
    "sync_target",
]

BATCH: Final = 200  # events per request (the backend takes up to 500)
_URL: Final = "sync.url"
_TOKEN: Final = "sync.token"  # noqa: S105 -- the setting's name, not a secret
_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class SyncTarget:
    """Where the history goes: the backend's base URL and this workstation's token."""

    url: str
    token: str


def configure(db: Database, url: str, token: str) -> SyncTarget:
    """Store the backend's URL and this workstation's token.

    Raises:
        ConfigError: the URL is not ``http(s)://...`` or the token is empty.
    """
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")) or not token.strip():
        raise ConfigError(
            f"the backend URL must be http(s)://HOST:PORT and the token not empty, got {url!r}"
        )
    with db.session() as session:
        for key, value in ((_URL, url), (_TOKEN, token.strip())):
            session.merge(Setting(key=key, value=value))
    return SyncTarget(url, token.strip())


def sync_target(db: Database) -> SyncTarget | None:
    """The configured backend, or None (the history then stays local)."""
    with db.session() as session:
        found = {s.key: s.value for s in session.scalars(select(Setting))}
    if _URL not in found or _TOKEN not in found:
        return None
    return SyncTarget(found[_URL], found[_TOKEN])


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncStatus:
    """What the sync has done and has left.

    Attributes:
        target: the backend's URL, or None when none is configured.
        pending: events not sent yet (rejected ones included).
        sent: events the backend holds.
        rejected: events the backend refused for good, with its reason.
        oldest_pending: when the oldest unsent event was written.
        last_sent: when the last event was sent.
    """

    target: str | None
    pending: int
    sent: int
    rejected: list[tuple[str, str]]
    oldest_pending: datetime | None
    last_sent: datetime | None

    def to_json(self) -> dict[str, Any]:
        """The ``sync status --json`` object."""
        return {
            "backend": self.target,
            "pending": self.pending,
            "sent": self.sent,
            "rejected": [{"event_id": e, "reason": r} for e, r in self.rejected],
            "oldest_pending": _iso(self.oldest_pending),
            "last_sent": _iso(self.last_sent),
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else utc(moment).isoformat(timespec="seconds")


def sync_status(db: Database) -> SyncStatus:
    """Counts and times of the outbox."""
    target = sync_target(db)
    unsent = OutboxEntry.sent_at.is_(None)
    with db.session() as session:
        pending = session.scalar(select(func.count()).where(unsent)) or 0
        sent = session.scalar(select(func.count()).where(OutboxEntry.sent_at.is_not(None))) or 0
        oldest = session.scalar(select(func.min(OutboxEntry.created_at)).where(unsent))
        last = session.scalar(select(func.max(OutboxEntry.sent_at)))
        rejected = session.execute(
            select(OutboxEntry.event_id, OutboxEntry.rejected)
            .where(unsent, OutboxEntry.rejected.is_not(None))
            .order_by(OutboxEntry.id)
            .limit(20)
        ).all()
    return SyncStatus(
        target=None if target is None else target.url,
        pending=pending,
        sent=sent,
        rejected=[(e, r or "") for e, r in rejected],
        oldest_pending=oldest,
        last_sent=last,
    )


@dataclass(frozen=True, slots=True)
class Pushed:
    """One push: events the backend now holds, those it refused, and how many are left."""

    sent: int
    rejected: int
    left: int


def _batch(db: Database, size: int) -> list[dict[str, Any]]:
    """The oldest unsent events not refused for good, in the order they were written."""
    with db.session() as session:
        rows = session.scalars(
            select(HistoryRecord)
            .join(OutboxEntry, OutboxEntry.event_id == HistoryRecord.event_id)
            .where(OutboxEntry.sent_at.is_(None), OutboxEntry.rejected.is_(None))
            .order_by(OutboxEntry.id)
            .limit(size)
        ).all()
        return [event_of(row) for row in rows]


def _left(db: Database) -> int:
    with db.session() as session:
        return (
            session.scalar(
                select(func.count()).where(
                    OutboxEntry.sent_at.is_(None), OutboxEntry.rejected.is_(None)
                )
            )
            or 0
        )


async def push_once(
    db: Database, target: SyncTarget, client: httpx.AsyncClient, *, size: int = BATCH
) -> Pushed:
    """Send one batch of unsent events and mark what the backend holds as sent.

    Raises:
        LinkError: the backend did not answer, or answered an error (nothing is marked).
        ConfigError: the backend refused the credential (401/403): reconfigure.
        DatabaseError: the outbox could not be read or marked.
    """
    events = await asyncio.to_thread(_batch, db, size)
    if not events:
        return Pushed(0, 0, 0)
    answer = await _post(client, target, events)
    held = [*answer.get("accepted", []), *answer.get("duplicates", [])]
    refused = {
        str(r["event_id"]): str(r.get("reason", "refused"))
        for r in answer.get("rejected", [])
        if not r.get("retry", False)
    }
    await asyncio.to_thread(_mark, db, [str(e) for e in held], refused)
    left = await asyncio.to_thread(_left, db)
    return Pushed(len(held), len(refused), left)


async def _post(
    client: httpx.AsyncClient, target: SyncTarget, events: list[dict[str, Any]]
) -> dict[str, Any]:
    try:
        response = await client.post(
            f"{target.url}/api/v1/events",
            json={"events": events},
            headers={"authorization": f"Bearer {target.token}"},
            timeout=_TIMEOUT_S,
        )
    except httpx.HTTPError as error:
        raise LinkError(f"the backend {target.url} did not answer: {error!r}") from error
    if response.status_code in (401, 403):
        raise ConfigError(
            f"the backend {target.url} refused this workstation's token "
            f"({response.status_code}); set a valid one with 'ecuworks sync configure'"
        )
    if response.status_code != 200:
        raise LinkError(f"the backend {target.url} answered {response.status_code}")
    body: dict[str, Any] = response.json()
    return body


def _mark(db: Database, held: list[str], refused: dict[str, str]) -> None:
    now = datetime.now(UTC)
    with db.session() as session:
        if held:
            session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.event_id.in_(held), OutboxEntry.sent_at.is_(None))
                .values(sent_at=now, attempts=OutboxEntry.attempts + 1)
            )
        for event_id, reason in refused.items():
            session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.event_id == event_id)
                .values(rejected=reason[:2000], attempts=OutboxEntry.attempts + 1)
            )


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with full jitter: the n-th wait is uniform in
    [base * 2**n / 2, base * 2**n], capped."""

    base_s: float = 1.0
    cap_s: float = 300.0
    failures: int = 0
    rand: Callable[[], float] = random.random

    def next_wait(self) -> float:
        """Count a failure; the seconds to wait before the next try."""
        ceiling: float = min(self.cap_s, self.base_s * 2.0**self.failures)
        self.failures = min(self.failures + 1, 32)
        return ceiling * (0.5 + 0.5 * self.rand())

    def reset(self) -> None:
        """A try succeeded."""
        self.failures = 0


class SyncWorker:
    """Sends the outbox in the background until stopped.

    Args:
        db: the workstation's database.
        idle_s: how often to look for new records when everything is sent.
        backoff: the waits after a failure.
        say: told of each failure and recovery (a log line); quiet by default.
    """

    def __init__(
        self,
        db: Database,
        *,
        idle_s: float = 5.0,
        backoff: Backoff | None = None,
        say: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.db = db
        self.idle_s = idle_s
        self.backoff = backoff or Backoff()
        self.say = say
        self.last_error: str | None = None
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for new records now (a job just wrote one)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Push until ``stop`` is set; never raises for the backend being away."""
        async with httpx.AsyncClient() as client:
            while not stop.is_set():
                wait = await self._step(client)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(stop, self._wake), timeout=wait)

    async def _step(self, client: httpx.AsyncClient) -> float:
        """One push; returns how long to wait before the next."""
        target = await asyncio.to_thread(sync_target, self.db)
        if target is None:
            return self.idle_s
        try:
            pushed = await push_once(self.db, target, client)
        except (LinkError, ConfigError, DatabaseError) as error:
            self.last_error = str(error)
            wait = self.backoff.next_wait()
            self.say(f"history sync: {error}; trying again in {wait:.1f} s")
            return wait
        if pushed.left and not (pushed.sent or pushed.rejected):
            # The backend holds back every event (an earlier one of a chain is missing):
            # no progress, so wait as after a failure instead of asking again at once.
            self.last_error = "the backend holds back the next events; retrying"
            return self.backoff.next_wait()
        if self.last_error is not None:
            self.say("history sync: the backend answers again")
        self.last_error = None
        self.backoff.reset()
        return 0.0 if pushed.left else self.idle_s


async def _first(*events: asyncio.Event) -> None:
    """Return when any of ``events`` is set."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
