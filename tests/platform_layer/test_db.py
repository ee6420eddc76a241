"""The platform database: migrated on open, append-only history, clear errors, PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy
from tests.postgres import PostgresCluster

from ecuworks.errors import DatabaseError
from ecuworks.platform import history
from ecuworks.platform.db import default_url, open_database

ENTRY = history.Entry(
    vin="WBA00000000000042",
    kind="program",
    user="ada",
    workstation="bench-1",
    outcome="done",
    summary="programmed to F020-24-03-500",
    svt_before={"16": ["HWEL_0000_0001_001_000_000"]},
    svt_after={"16": ["HWEL_0000_0001_001_000_001"]},
    journal_session=3,
)


def chain_of_three(url: str) -> None:
    db = open_database(url)
    try:
        for _ in range(3):
            history.append(db, ENTRY)
        records = history.vehicle_records(db, ENTRY.vin)
        assert [r.seq for r in records] == [1, 2, 3]
        assert records[0].prev_hash == history.GENESIS
        assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
        assert history.verify_chain(db, ENTRY.vin) is None
        with (
            pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"),
            db.engine.begin() as connection,
        ):
            connection.execute(sqlalchemy.text("UPDATE history SET summary = 'edited'"))
        with (
            pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"),
            db.engine.begin() as connection,
        ):
            connection.execute(sqlalchemy.text("DELETE FROM history WHERE seq = 2"))
        assert history.verify_chain(db, ENTRY.vin) is None
    finally:
        db.close()


def test_history_chains_and_refuses_edits_on_sqlite(tmp_path: Path) -> None:
    chain_of_three(default_url(tmp_path))
    with sqlite3.connect(tmp_path / "ecuworks.sqlite3") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_history_chains_and_refuses_edits_on_postgresql(postgres: PostgresCluster) -> None:
    chain_of_three(postgres.database())


def test_a_record_changed_behind_the_triggers_is_found(tmp_path: Path) -> None:
    db = open_database(default_url(tmp_path))
    for _ in range(3):
        history.append(db, ENTRY)
    db.close()
    with sqlite3.connect(tmp_path / "ecuworks.sqlite3") as raw:  # a raw editor
        raw.execute("DROP TRIGGER history_no_update")
        raw.execute("UPDATE history SET summary = 'nothing happened' WHERE seq = 2")
    db = open_database(default_url(tmp_path))
    try:
        broken = history.verify_chain(db, ENTRY.vin)
    finally:
        db.close()
    assert broken == history.ChainBreak(ENTRY.vin, 2, "its content differs from what was recorded")


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "ecuworks.sqlite3"
    path.write_bytes(b"these are somebody's notes, not a database" * 100)
    before = path.read_bytes()
    with pytest.raises(DatabaseError, match=r"cannot open the database .*ecuworks database"):
        open_database(default_url(tmp_path))
    assert path.read_bytes() == before


def test_a_database_of_a_newer_release_is_refused(tmp_path: Path) -> None:
    open_database(default_url(tmp_path)).close()
    with sqlite3.connect(tmp_path / "ecuworks.sqlite3") as raw:
        raw.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(DatabaseError, match="schema 9999, which this release"):
        open_database(default_url(tmp_path))


def test_an_unreachable_postgresql_is_named_without_its_password() -> None:
    with pytest.raises(DatabaseError) as caught:
        open_database("postgresql://ada:s3cret@127.0.0.1:1/ecuworks")
    assert "s3cret" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)
