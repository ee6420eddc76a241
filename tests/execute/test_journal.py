"""The session journal: what `ecuworks resume` relies on after a crash."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecuworks.errors import JournalError
from ecuworks.execute.journal import Event, Journal, SessionRecord, Status

VIN = "WBA00000000000001"
OTHER_VIN = "WBA00000000000002"
FLASH = "0x12/SwDeploy/SWFL-00F31280-002.011.018"
ENERGY = "step/energy-mode-flash"


def start(journal: Journal, vin: str = VIN) -> SessionRecord:
    return journal.start_session(
        vin=vin, fingerprint="fp-1", target_ilevel="F020-24-07-550", plan_json='{"actions": []}'
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "journal.sqlite3"


@pytest.fixture
def journal(path: Path) -> Iterator[Journal]:
    clock = itertools.count(1000.0)
    with Journal.open(path, clock=lambda: float(next(clock))) as journal:
        yield journal


def test_sessions_and_events_round_trip_through_the_file(path: Path) -> None:
    clock = itertools.count(1000.0)
    with Journal.open(path, clock=lambda: float(next(clock))) as journal:
        session = start(journal)
        journal.record(session.id, ENERGY, Status.STARTED)
        journal.record(session.id, ENERGY, Status.SUCCESS)
        journal.record(session.id, FLASH, Status.STARTED, ecu=0x12)
        journal.record(session.id, FLASH, Status.FAILED, ecu=0x12, detail="NRC 0x72")

    with Journal.open(path) as reopened:
        assert reopened.session(session.id) == SessionRecord(
            id=session.id,
            vin=VIN,
            fingerprint="fp-1",
            target_ilevel="F020-24-07-550",
            plan_json='{"actions": []}',
            state="running",
            created=1000.0,
            updated=1004.0,
            note="",
        )
        assert reopened.events(session.id) == [
            Event(key=ENERGY, ecu=None, status=Status.STARTED, attempt=1, detail="", at=1001.0),
            Event(key=ENERGY, ecu=None, status=Status.SUCCESS, attempt=1, detail="", at=1002.0),
            Event(key=FLASH, ecu=0x12, status=Status.STARTED, attempt=1, detail="", at=1003.0),
            Event(
                key=FLASH, ecu=0x12, status=Status.FAILED, attempt=1, detail="NRC 0x72", at=1004.0
            ),
        ]
        last = reopened.last(session.id, FLASH)
        assert last is not None
        assert last.status is Status.FAILED
        assert reopened.last(session.id, "0x63/SwDeploy/never") is None
        assert reopened.unfinished(VIN) == reopened.session(session.id)
        assert reopened.unfinished(OTHER_VIN) is None


def test_states_gives_the_latest_event_of_each_key(journal: Journal) -> None:
    session = start(journal)
    journal.record(session.id, ENERGY, Status.STARTED)
    journal.record(session.id, FLASH, Status.STARTED, ecu=0x12)
    journal.record(session.id, ENERGY, Status.SUCCESS)
    journal.record(session.id, FLASH, Status.FAILED, ecu=0x12)
    journal.record(session.id, FLASH, Status.STARTED, ecu=0x12, attempt=2)
    journal.record(session.id, "0x40/SwDeploy/x", Status.SKIPPED, ecu=0x40, detail="up to date")

    states = journal.states(session.id)

    assert {key: event.status for key, event in states.items()} == {
        ENERGY: Status.SUCCESS,
        FLASH: Status.STARTED,  # interrupted in its second attempt
        "0x40/SwDeploy/x": Status.SKIPPED,
    }
    assert states[FLASH].attempt == 2
    assert list(states) == [ENERGY, FLASH, "0x40/SwDeploy/x"]  # in the order they last changed
    assert journal.states(start(journal, OTHER_VIN).id) == {}


def test_attempts_counts_the_started_events_of_a_key(journal: Journal) -> None:
    session = start(journal)
    assert journal.attempts(session.id, FLASH) == 0
    for attempt in (1, 2, 3):
        journal.record(session.id, FLASH, Status.STARTED, ecu=0x12, attempt=attempt)
        journal.record(session.id, FLASH, Status.FAILED, ecu=0x12, attempt=attempt)
    journal.record(session.id, ENERGY, Status.STARTED)

    assert journal.attempts(session.id, FLASH) == 3
    assert journal.attempts(session.id, ENERGY) == 1


CHILD = """
import sys
from collections.abc import Iterator
from pathlib import Path
from ecuworks.execute.journal import Journal, Status

journal = Journal.open(Path(sys.argv[1]))
session = journal.start_session(vin=sys.argv[2], fingerprint="f", target_ilevel="i", plan_json="{}")
count = int(sys.argv[3])
for ecu in range(count - 1):
    journal.record(session.id, f"0x{ecu:02X}/SwDeploy/unit", Status.SUCCESS, ecu=ecu)
    print("ready", flush=True)
journal.record(session.id, "0x40/SwDeploy/unit", Status.STARTED, ecu=0x40)
print("ready", flush=True)
sys.stdin.readline()
"""


async def test_every_recorded_event_survives_the_tester_being_killed(path: Path) -> None:
    count = 20
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(path),
        VIN,
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        async with asyncio.timeout(30):
            for _ in range(count):
                assert await child.stdout.readline() == b"ready\n"
    finally:
        child.kill()  # SIGKILL: no cleanup, no close, no checkpoint
        async with asyncio.timeout(10):
            await child.wait()
    assert child.returncode == -signal.SIGKILL

    with Journal.open(path) as journal:
        session = journal.unfinished(VIN)
        assert session is not None
        assert session.state == "running"
        states = journal.states(session.id)
        assert len(journal.events(session.id)) == count
        assert [key for key, event in states.items() if event.status is Status.SUCCESS] == [
            f"0x{ecu:02X}/SwDeploy/unit" for ecu in range(count - 1)
        ]
        assert states["0x40/SwDeploy/unit"].status is Status.STARTED  # the interrupted one


def test_a_second_session_for_a_running_vehicle_is_refused(journal: Journal) -> None:
    first = start(journal)

    with pytest.raises(JournalError, match=r"ecuworks resume --abandon") as refused:
        start(journal)
    assert VIN in str(refused.value)
    assert "`ecuworks resume`" in str(refused.value)

    assert start(journal, OTHER_VIN).vin == OTHER_VIN  # another vehicle is not held up
    journal.set_state(first.id, "finished", note="all units programmed")
    second = start(journal)
    assert second.id != first.id
    assert journal.session(first.id).note == "all units programmed"
    assert journal.unfinished(VIN) == second


def test_a_failed_session_is_what_resume_finds(journal: Journal) -> None:
    failed = start(journal)
    journal.set_state(failed.id, "failed", note="0x12 NRC 0x72")
    assert journal.unfinished(VIN) == journal.session(failed.id)
    journal.set_state(failed.id, "cancelled")
    assert journal.unfinished(VIN) is None
    assert journal.unfinished() is None


@pytest.mark.parametrize(
    "content",
    [b"this is not a database\n" * 10, b"SQLite format 3\x00" + bytes(range(256)) * 16],
    ids=["garbage", "damaged-header"],
)
def test_a_corrupt_journal_is_refused_and_left_as_it_was(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content)

    with pytest.raises(JournalError) as refused:
        Journal.open(path)

    message = str(refused.value)
    assert str(path) in message
    assert "move the damaged file aside" in message
    assert "vehicle was not touched" in message
    assert path.read_bytes() == content


def test_damaged_pages_are_reported_not_guessed(path: Path) -> None:
    with Journal.open(path) as journal:
        session = start(journal)
        for ecu in range(50):
            journal.record(session.id, f"0x{ecu:02X}/SwDeploy/u", Status.SUCCESS, detail="x" * 200)
    content = bytearray(path.read_bytes())
    page = 4096
    assert len(content) > 3 * page
    content[page : 3 * page] = b"\xff" * (2 * page)
    path.write_bytes(content)

    with pytest.raises(JournalError, match="malformed") as refused, Journal.open(path) as journal:
        journal.states(session.id)
    assert str(path) in str(refused.value)
    assert "move the damaged file aside" in str(refused.value)
    assert path.read_bytes() == content


def test_a_journal_from_a_newer_ecuworks_is_refused(path: Path) -> None:
    with Journal.open(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 7")
    db.close()
    content = path.read_bytes()

    with pytest.raises(JournalError, match=r"schema version 7.*upgrade ecuworks"):
        Journal.open(path)
    assert path.read_bytes() == content


def test_another_programs_database_is_not_taken_over(path: Path) -> None:
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (name TEXT)")
    db.close()

    with pytest.raises(JournalError, match="not an ecuworks session journal"):
        Journal.open(path)


def test_a_directory_that_cannot_be_created_is_reported(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("a file where the data directory should be")

    with pytest.raises(JournalError, match=r"cannot create .*home") as refused:
        Journal.open(tmp_path / "home" / "journal.sqlite3")
    assert "--home" in str(refused.value)


def test_the_journal_is_in_wal_mode_so_readers_are_not_blocked(path: Path) -> None:
    with Journal.open(path) as writer:
        session = start(writer)
        writer.record(session.id, ENERGY, Status.SUCCESS)
        with sqlite3.connect(path) as probe:
            assert probe.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        probe.close()
        # Another process is in the middle of a write and holds the write lock.
        busy = sqlite3.connect(path, isolation_level=None)
        try:
            busy.execute("BEGIN EXCLUSIVE")
            busy.execute(
                "INSERT INTO events (session_id, key, status, attempt, at) "
                "VALUES (?, 'step/uncommitted', 'Started', 1, 0)",
                (session.id,),
            )
            with Journal.open(path, busy_timeout=0.05) as reader:
                assert list(reader.states(session.id)) == [ENERGY]
                assert reader.unfinished(VIN) == writer.session(session.id)
        finally:
            busy.close()


def test_a_full_disk_mid_session_is_a_journal_error(journal: Journal) -> None:
    session = start(journal)
    journal.record(session.id, ENERGY, Status.SUCCESS)
    db = journal._db  # SQLite's page limit stands in for a full disk
    assert db is not None
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages}")  # no room for one more page

    with pytest.raises(JournalError, match="free disk space") as full:
        journal.record(session.id, FLASH, Status.STARTED, ecu=0x12, detail="x" * 20_000)
    assert "ecuworks resume" in str(full.value)
    assert list(journal.states(session.id)) == [ENERGY]
    journal.record(session.id, FLASH, Status.STARTED, ecu=0x12)  # the connection is still usable


def test_a_journal_deleted_while_in_use_refuses_to_record(journal: Journal, path: Path) -> None:
    session = start(journal)
    path.unlink()

    with pytest.raises(JournalError, match="deleted or replaced"):
        journal.record(session.id, FLASH, Status.STARTED, ecu=0x12)


def test_unknown_statuses_states_and_sessions_are_refused(journal: Journal) -> None:
    session = start(journal)

    with pytest.raises(ValueError, match=r"unknown journal status 'Done'.*Started, Success"):
        journal.record(session.id, FLASH, "Done")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="attempt"):
        journal.record(session.id, FLASH, Status.STARTED, attempt=0)
    with pytest.raises(ValueError, match="unknown session state 'done'"):
        journal.set_state(session.id, "done")
    assert journal.record(session.id, FLASH, "Success").status is Status.SUCCESS  # type: ignore[arg-type]

    for call in (
        lambda: journal.session(99),
        lambda: journal.record(99, FLASH, Status.STARTED),
        lambda: journal.set_state(99, "finished"),
        lambda: journal.states(99),
        lambda: journal.events(99),
        lambda: journal.last(99, FLASH),
        lambda: journal.attempts(99, FLASH),
    ):
        with pytest.raises(JournalError, match="no session 99"):
            call()


def test_a_closed_journal_says_so(path: Path) -> None:
    journal = Journal.open(path)
    session = start(journal)
    journal.close()
    journal.close()

    with pytest.raises(JournalError, match="closed"):
        journal.record(session.id, FLASH, Status.STARTED)
    with pytest.raises(JournalError, match="closed"):
        journal.states(session.id)
