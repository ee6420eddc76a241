"""The workstation's history sync: every record gets its outbox row, and the backend ends up
holding each record exactly once, whatever happens to it in between."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import create_engine, func, select, text
from tests.execute.test_reservation import free_port
from tests.postgres import PostgresCluster

from ecuworks.backend.accounts import Role as BackendRole
from ecuworks.backend.accounts import add_user, add_workshop, add_workstation, create_user_token
from ecuworks.backend.db import open_backend_database
from ecuworks.backend.models import Event
from ecuworks.platform.db import _MIGRATIONS, Database, _alembic_config, default_url, open_database
from ecuworks.platform.history import Entry, append, vehicle_records
from ecuworks.platform.sync import Backoff, SyncWorker, configure, sync_status

EVENTS = 1000
RESTARTS = 5
VINS = [f"WBA00000000{n:06d}" for n in range(10)]
WORKSTATION = "bench-1"


def history_entry(vin: str, n: int) -> Entry:
    """The n-th identify record of ``vin`` on this suite's workstation."""
    return Entry(
        vin=vin,
        kind="identify",
        user="ada",
        workstation=WORKSTATION,
        outcome="read",
        summary=f"identify #{n}",
        data={"n": n},
    )


def test_every_history_record_is_written_with_its_outbox_row(tmp_path: Path) -> None:
    db = open_database(default_url(tmp_path))
    try:
        for n in range(3):
            append(db, history_entry(VINS[0], n))
        status = sync_status(db)
        assert (status.pending, status.sent, status.target) == (3, 0, None)
        assert status.oldest_pending is not None
    finally:
        db.close()


def test_records_written_before_the_outbox_existed_are_sent_too(tmp_path: Path) -> None:
    url = default_url(tmp_path)
    engine = create_engine(url)
    with engine.begin() as connection:
        config = _alembic_config(_MIGRATIONS, "alembic_version")
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(
            text(
                "INSERT INTO history (event_id, vin, seq, kind, at, user, workstation, outcome, "
                "summary, data, prev_hash, hash) VALUES ('e1', :vin, 1, 'identify', "
                "'2026-11-01 08:00:00', 'ada', 'bench-1', 'read', 'old', '{}', :zero, :h)"
            ),
            {"vin": VINS[0], "zero": "0" * 64, "h": "1" * 64},
        )
    engine.dispose()
    db = open_database(url)  # upgrades to the newest revision
    try:
        assert sync_status(db).pending == 1
    finally:
        db.close()


class BackendProcess:
    """``ecuworks backend`` as a real process, to be killed with SIGKILL and restarted."""

    def __init__(self, db_url: str, home: Path) -> None:
        self.db_url = db_url
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, client: httpx.AsyncClient) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ecuworks",
            "--home",
            str(self.home),
            "backend",
            "--db",
            self.db_url,
            "--port",
            str(self.port),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if (await client.get(f"{self.url}/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.process.returncode is None, "the backend exited at its start"
            assert time.monotonic() < deadline, "the backend did not answer within 60 s"
            await asyncio.sleep(0.05)  # polling its health with a deadline

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()


@pytest.fixture
async def backend(postgres: PostgresCluster, tmp_path: Path) -> AsyncIterator[BackendProcess]:
    running = BackendProcess(postgres.database(), tmp_path / "backend")
    running.home.mkdir()
    yield running
    if running.process is not None and running.process.returncode is None:
        await running.kill()


def _more_than(count: Callable[[], int], seen: int) -> Callable[[], bool]:
    return lambda: count() > seen


async def _until(condition: Callable[[], bool], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, f"{what} within {seconds:.0f} s"
        await asyncio.sleep(0.05)  # polling a condition with a deadline


async def test_the_backend_holds_every_record_once_after_five_kills(
    backend: BackendProcess, tmp_path: Path
) -> None:
    central = open_backend_database(backend.db_url)
    workstation = open_database(default_url(tmp_path))
    try:
        await _produce_through_kills(backend, central, workstation)
    finally:
        workstation.close()
        central.close()


async def _produce_through_kills(
    backend: BackendProcess, central: Database, workstation: Database
) -> None:
    add_workshop(central, "north")
    token = add_workstation(central, "north", WORKSTATION)
    add_user(central, "auditor", "correct horse battery", BackendRole.ADMIN)
    admin_token = create_user_token(central, "auditor")
    configure(workstation, backend.url, token)
    worker = SyncWorker(workstation, idle_s=0.05, backoff=Backoff(base_s=0.05, cap_s=0.5))
    slices = [range(k, EVENTS, RESTARTS + 1) for k in range(RESTARTS + 1)]

    def produce(numbers: range) -> None:
        for n in numbers:
            append(workstation, history_entry(VINS[n % len(VINS)], n))

    def held() -> int:
        with central.session() as session:
            return session.scalar(select(func.count()).select_from(Event)) or 0

    async with httpx.AsyncClient(timeout=30) as client:
        await backend.start(client)
        sending = asyncio.create_task(worker.run(asyncio.Event()))
        try:
            # Each kill lands while records are being written and sent; the records
            # written while the backend is down wait in the outbox.
            for restart, numbers in enumerate(slices[:-1], start=1):
                producing = asyncio.create_task(asyncio.to_thread(produce, numbers))
                await _until(_more_than(held, held()), f"events arrive before kill {restart}")
                await backend.kill()
                await producing
                await backend.start(client)
            await asyncio.to_thread(produce, slices[-1])
            await _until(lambda: sync_status(workstation).pending == 0, "the outbox empties")
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
        verdict = (
            await client.get(
                f"{backend.url}/api/v1/chains/verify",
                headers={"authorization": f"Bearer {admin_token}"},
            )
        ).json()

    with central.session() as session:
        ids = list(session.scalars(select(Event.event_id)))
    written = {r.event_id for vin in VINS for r in vehicle_records(workstation, vin)}
    assert len(written) == EVENTS
    assert len(ids) == EVENTS, "exactly the records written, no more, no fewer"
    assert set(ids) == written
    assert verdict["ok"] is True, verdict["breaks"]
    assert verdict["events"] == EVENTS
    assert verdict["chains"] == len(VINS)
    assert sync_status(workstation).sent == EVENTS
