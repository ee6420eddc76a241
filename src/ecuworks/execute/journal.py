"""The programming session journal: the source of truth of a session, in SQLite.

Every state change of a step or action is committed (``synchronous=FULL``, WAL) before
:meth:`Journal.record` returns, so after the tester is killed or loses power ``ecuworks
resume`` knows which units finished, which one was interrupted (its last event is
``Started``) and which were never started. Each write is its own transaction.

The file is ``<home>/journal.sqlite3``. Its schema version is ``PRAGMA user_version``. A
journal that cannot be read is never deleted or rewritten: it may be the only record of
what was written to a vehicle.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from ecuworks.errors import JournalError

__all__ = ["SCHEMA_VERSION", "SESSION_STATES", "Event", "Journal", "SessionRecord", "Status"]

SCHEMA_VERSION: Final = 1
SESSION_STATES: Final = ("running", "finished", "failed", "cancelled")

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS sessions (
        id INTEGER PRIMARY KEY, vin TEXT NOT NULL, fingerprint TEXT NOT NULL,
        target_ilevel TEXT NOT NULL, plan_json TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('running', 'finished', 'failed', 'cancelled')),
        created REAL NOT NULL, updated REAL NOT NULL, note TEXT NOT NULL DEFAULT '')""",
    """CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY, session_id INTEGER NOT NULL REFERENCES sessions (id),
        key TEXT NOT NULL, ecu INTEGER,
        status TEXT NOT NULL
            CHECK (status IN ('Started', 'Success', 'Failed', 'Skipped', 'Cancelled')),
        attempt INTEGER NOT NULL CHECK (attempt >= 1), detail TEXT NOT NULL DEFAULT '',
        at REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS events_session_key ON events (session_id, key)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
_TOUCH: Final = "UPDATE sessions SET updated = ? WHERE id = ?"
_INSERT_EVENT: Final = (
    "INSERT INTO events (session_id, key, ecu, status, attempt, detail, at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_EVENTS: Final = "SELECT key, ecu, status, attempt, detail, at FROM events WHERE session_id = ?"
_UNTOUCHED: Final = "the vehicle was not touched"
_RESUME: Final = "then run `ecuworks resume`"


class Status(StrEnum):
    """What happened to a step or action, as the journal records it."""

    STARTED = "Started"
    SUCCESS = "Success"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    CANCELLED = "Cancelled"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One state change of a step or action.

    Attributes:
        key: the action key (``0x12/SwDeploy/SWFL-00F31280-002.011.018``) or step
            (``step/energy-mode-flash``).
        ecu: the ECU's diagnostic address, None for a vehicle-wide step.
        status: the new state.
        attempt: which attempt this is, from 1.
        detail: free text for the technician (an NRC, a reason for skipping).
        at: when it was recorded (seconds since the epoch).
    """

    key: str
    ecu: int | None
    status: Status
    attempt: int
    detail: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRecord:
    """One programming session: its vehicle, its plan and how far it got.

    Attributes:
        state: one of :data:`SESSION_STATES`.
        plan_json: the measures plan the session runs, as JSON.
        note: why the session ended as it did, when it ended.
    """

    id: int
    vin: str
    fingerprint: str
    target_ilevel: str
    plan_json: str
    state: str
    created: float
    updated: float
    note: str


def _advice(exc: sqlite3.Error, path: Path) -> str:
    name = exc.sqlite_errorname or ""
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
        return "move the damaged file aside (keep it: it records what was programmed)"
    if name == "SQLITE_FULL":
        return f"free disk space on the drive of {path.parent}"
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")):
        return f"make {path} and its directory writable for this user"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return "another ecuworks process holds the journal: let it finish or stop it"
    return "check the disk and the file"


class Journal:
    """The session journal in one SQLite file; open it with :meth:`Journal.open`.

    Calls are serialised, so a journal may be shared between threads (e.g. used through
    ``asyncio.to_thread``); each write blocks until it is on disk.
    """

    def __init__(self, db: sqlite3.Connection, path: Path, clock: Callable[[], float]) -> None:
        db.row_factory = sqlite3.Row
        self.path = path
        self._db: sqlite3.Connection | None = db
        self._clock = clock
        self._lock = threading.RLock()
        self._identity = (-1, -1)

    @classmethod
    def open(
        cls, path: Path, *, clock: Callable[[], float] = time.time, busy_timeout: float = 5.0
    ) -> Journal:
        """Open the journal at ``path``, creating its directory, file and schema as needed.

        Args:
            path: the journal file, normally ``<home>/journal.sqlite3``.
            clock: the source of timestamps.
            busy_timeout: seconds to wait while another process writes.

        Raises:
            JournalError: the directory cannot be created, or the file cannot be opened,
                is not a journal, is damaged, or has a newer schema; the file is left as it was.
        """
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(
                f"cannot create {path.parent} for the session journal ({exc.strerror or exc}): "
                f"choose a writable --home or fix its permissions; {_UNTOUCHED}"
            ) from exc
        try:
            db = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise _open_error(path, exc) from exc
        journal = cls(db, path, clock)
        try:
            journal._prepare(db)
        except BaseException as exc:
            db.close()
            if isinstance(exc, sqlite3.Error):
                raise _open_error(path, exc) from exc
            raise
        return journal

    def _prepare(self, db: sqlite3.Connection) -> None:
        # Read before anything writes, so a foreign or damaged file is refused untouched.
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"the session journal {self.path} has schema version {version}, newer than "
                f"this ecuworks understands ({SCHEMA_VERSION}): upgrade ecuworks to resume "
                f"it; {_UNTOUCHED}"
            )
        if version < 0 or (version == 0 and db.execute("SELECT 1 FROM sqlite_master").fetchone()):
            raise JournalError(
                f"{self.path} is an SQLite database but not an ecuworks session journal: "
                f"move it aside or choose another --home; {_UNTOUCHED}"
            )
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA synchronous = FULL")
        if (mode := db.execute("PRAGMA journal_mode = WAL").fetchone()[0]) != "wal":
            raise JournalError(
                f"the session journal {self.path} cannot use write-ahead logging (mode "
                f"{mode!r}): keep --home on a local disk; {_UNTOUCHED}"
            )
        stat = os.stat(self.path)
        self._identity = (stat.st_dev, stat.st_ino)
        if version == 0:
            with self._write("create the schema", then=f"then run again; {_UNTOUCHED}") as tx:
                if tx.execute("PRAGMA user_version").fetchone()[0] == 0:  # no one was faster
                    for statement in _SCHEMA:
                        tx.execute(statement)

    def close(self) -> None:
        """Close the file; later calls raise :class:`JournalError`. Closing twice is fine."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start_session(
        self, *, vin: str, fingerprint: str, target_ilevel: str, plan_json: str
    ) -> SessionRecord:
        """Begin a session in state ``running``.

        Raises:
            JournalError: a session for this VIN is still running, or the write failed.
        """
        with self._write("start a session") as tx:
            running = tx.execute(
                "SELECT max(id) FROM sessions WHERE vin = ? AND state = 'running'", (vin,)
            ).fetchone()[0]
            if running is not None:
                raise JournalError(
                    f"session {running} for {vin} is still running in {self.path}: run "
                    "`ecuworks resume` to finish it, or `ecuworks resume --abandon` to give "
                    "it up, before starting another"
                )
            now = self._clock()
            session_id = tx.execute(
                "INSERT INTO sessions (vin, fingerprint, target_ilevel, plan_json, state, "
                "created, updated, note) VALUES (?, ?, ?, ?, 'running', ?, ?, '')",
                (vin, fingerprint, target_ilevel, plan_json, now, now),
            ).lastrowid
        assert session_id is not None
        return self.session(session_id)

    def unfinished(self, vin: str | None = None) -> SessionRecord | None:
        """The latest ``running`` or ``failed`` session (of ``vin`` if given), if any."""
        rows = self._read(
            "SELECT * FROM sessions WHERE state IN ('running', 'failed') AND vin = coalesce(?, vin)"
            " ORDER BY id DESC LIMIT 1",
            (vin,),
        )
        return SessionRecord(**rows[0]) if rows else None

    def session(self, session_id: int) -> SessionRecord:
        """The session with that id.

        Raises:
            JournalError: there is no such session.
        """
        rows = self._read("SELECT * FROM sessions WHERE id = ?", (session_id,))
        if not rows:
            raise self._no_session(session_id)
        return SessionRecord(**rows[0])

    def set_state(self, session_id: int, state: str, note: str = "") -> None:
        """Set a session's state: ``running``, ``finished``, ``failed`` or ``cancelled``.

        Raises:
            ValueError: ``state`` is none of those.
            JournalError: there is no such session, or the write failed.
        """
        if state not in SESSION_STATES:
            raise ValueError(f"unknown session state {state!r}: expected one of {SESSION_STATES}")
        with self._write(f"mark session {session_id} {state}") as tx:
            if not tx.execute(
                "UPDATE sessions SET state = ?, note = ?, updated = ? WHERE id = ?",
                (state, note, self._clock(), session_id),
            ).rowcount:
                raise self._no_session(session_id)

    def record(
        self,
        session_id: int,
        key: str,
        status: Status,
        *,
        ecu: int | None = None,
        attempt: int = 1,
        detail: str = "",
    ) -> Event:
        """Record a state change of ``key``; it is on disk when this returns.

        Raises:
            ValueError: ``status`` is not a :class:`Status`, or ``attempt`` is below 1.
            JournalError: there is no such session, or the write failed.
        """
        if status not in set(Status):
            raise ValueError(f"unknown journal status {status!r}: expected {', '.join(Status)}")
        if attempt < 1:
            raise ValueError(f"attempt must be 1 or more, not {attempt}")
        status, now = Status(status), self._clock()
        with self._write(f"record {key} {status}") as tx:
            if not tx.execute(_TOUCH, (now, session_id)).rowcount:
                raise self._no_session(session_id)
            tx.execute(_INSERT_EVENT, (session_id, key, ecu, status.value, attempt, detail, now))
        return Event(key=key, ecu=ecu, status=status, attempt=attempt, detail=detail, at=now)

    def last(self, session_id: int, key: str) -> Event | None:
        """The latest event of ``key``, or None if it was never recorded."""
        sql = _EVENTS + " AND key = ? ORDER BY id DESC LIMIT 1"
        rows = self._read(sql, (session_id, key), session_id)
        return _event(rows[0]) if rows else None

    def states(self, session_id: int) -> dict[str, Event]:
        """The latest event of every key, in the order the keys last changed."""
        rows = self._read(
            "SELECT key, ecu, status, attempt, detail, at FROM events WHERE id IN "
            "(SELECT max(id) FROM events WHERE session_id = ? GROUP BY key) ORDER BY id",
            (session_id,),
            session_id,
        )
        return {row["key"]: _event(row) for row in rows}

    def events(self, session_id: int) -> list[Event]:
        """Every event of the session, in the order recorded."""
        rows = self._read(_EVENTS + " ORDER BY id", (session_id,), session_id)
        return [_event(row) for row in rows]

    def attempts(self, session_id: int, key: str) -> int:
        """How many times ``key`` was started in the session (its ``Started`` events)."""
        rows = self._read(
            "SELECT count(*) FROM events WHERE session_id = ? AND key = ? AND status = 'Started'",
            (session_id, key),
        )
        count: int = rows[0][0]
        if not count:
            self.session(session_id)  # raises for an unknown session
        return count

    def _no_session(self, session_id: int) -> JournalError:
        return JournalError(f"there is no session {session_id} in the journal {self.path}")

    def _read(
        self, sql: str, params: tuple[object, ...], session_id: int | None = None
    ) -> list[sqlite3.Row]:
        """Rows of one query; with ``session_id``, no rows for an unknown session raise."""
        with self._lock:
            if self._db is None:
                raise JournalError(f"the session journal {self.path} is closed")
            try:
                rows: list[sqlite3.Row] = self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise JournalError(
                    f"cannot read the session journal {self.path} ({exc}): "
                    f"{_advice(exc, self.path)}, {_RESUME}"
                ) from exc
        if not rows and session_id is not None:
            self.session(session_id)
        return rows

    @contextmanager
    def _write(self, what: str, *, then: str = _RESUME) -> Iterator[sqlite3.Connection]:
        """One committed transaction; a journal that vanished is refused, not written."""
        with self._lock:
            if (db := self._db) is None:
                raise JournalError(f"cannot {what}: the session journal {self.path} is closed")
            try:
                stat = os.stat(self.path)
                gone = (stat.st_dev, stat.st_ino) != self._identity
            except OSError:
                gone = True
            if gone:  # SQLite would go on writing to the unlinked file, and lose it all
                raise JournalError(
                    f"cannot {what}: the session journal {self.path} was deleted or replaced "
                    f"while in use, so nothing more can be recorded: restore it, {then}"
                )
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                if db.in_transaction:
                    with suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise JournalError(
                        f"cannot {what} in the session journal {self.path} ({exc}): "
                        f"{_advice(exc, self.path)}, {then}"
                    ) from exc
                raise


def _open_error(path: Path, exc: sqlite3.Error) -> JournalError:
    return JournalError(
        f"cannot open the session journal {path} ({exc}): {_advice(exc, path)}, then run "
        f"again; {_UNTOUCHED}"
    )


def _event(row: sqlite3.Row) -> Event:
    return Event(**{**dict(row), "status": Status(row["status"])})
