"""A central backend served by uvicorn on a free loopback port, over SQLite or PostgreSQL,
and history events made as a workstation makes them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecuworks.backend.accounts import (
    Role,
    add_user,
    add_workshop,
    add_workstation,
    create_user_token,
)
from ecuworks.backend.app import create_backend
from ecuworks.backend.db import default_backend_url, open_backend_database
from ecuworks.backend.issuing import add_grant
from ecuworks.backend.settings import BackendSettings
from ecuworks.embedded_http import serve_asgi
from ecuworks.platform.db import Database
from ecuworks.platform.history import GENESIS, event_hash

PASSWORD = "correct horse battery"
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@dataclass
class Backend:
    """A running backend: its URL and database, and helpers to set it up."""

    url: str
    db: Database
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        client = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=60)
        self.clients.append(client)  # closed by the fixture
        return client

    def workshop(self, name: str) -> None:
        add_workshop(self.db, name)

    def workstation(self, workshop: str, name: str) -> str:
        return add_workstation(self.db, workshop, name)

    def grant(self, workshop: str, vin: str, app_id: int | None = None) -> None:
        add_grant(self.db, workshop, vin, app_id)

    def user(self, name: str, workshop: str | None = None) -> str:
        """A user (analyst of ``workshop``, else admin); its API token."""
        role = Role.ANALYST if workshop else Role.ADMIN
        add_user(self.db, name, PASSWORD, role, workshop=workshop)
        return create_user_token(self.db, name)


StartBackend = Callable[..., Awaitable[Backend]]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL, once for SQLite and once for PostgreSQL."""
    if request.param == "sqlite":
        return default_backend_url(tmp_path)
    postgres = request.getfixturevalue("postgres")
    url: str = postgres.database()
    return url


@pytest.fixture
async def start_backend(tmp_path: Path) -> AsyncIterator[StartBackend]:
    """``await start_backend(db_url=None, **settings)``: serve a backend on loopback."""
    running: list[Any] = []
    backends: list[Backend] = []

    async def start(db_url: str | None = None, **settings: Any) -> Backend:
        url = db_url or default_backend_url(tmp_path)
        db = open_backend_database(url)
        app = create_backend(BackendSettings(db_url=url, **settings), db=db)
        server = await serve_asgi(app, what="backend", option="--port")
        running.append((server, db))
        backend = Backend(server.url.rstrip("/"), db)
        backends.append(backend)
        return backend

    yield start
    for backend in backends:
        for client in backend.clients:
            await client.aclose()
    for server, db in reversed(running):
        await server.close()
        db.close()


def chain(
    vin: str,
    workstation: str,
    count: int,
    *,
    start: int = 1,
    prev_hash: str = GENESIS,
    kind: str = "identify",
    outcome: str = "read",
    data: dict[str, Any] | None = None,
    at: datetime = T0,
) -> list[dict[str, Any]]:
    """``count`` events of one VIN's chain from ``start``, hashed as the history does."""
    events = []
    for seq in range(start, start + count):
        event: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "vin": vin,
            "seq": seq,
            "kind": kind,
            "at": (at + timedelta(minutes=seq)).isoformat(timespec="microseconds"),
            "user": "tech",
            "workstation": workstation,
            "journal_session": None,
            "outcome": outcome,
            "summary": f"{kind} #{seq}",
            "svt_before": None,
            "svt_after": None,
            "data": data or {},
        }
        event["prev_hash"] = prev_hash
        event["hash"] = prev_hash = event_hash(prev_hash, event)
        events.append(event)
    return events
