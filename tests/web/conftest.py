"""A workstation web UI served by uvicorn on a free loopback port, over a fresh database."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecuworks.embedded_http import serve_asgi
from ecuworks.platform.db import Database, default_url, open_database
from ecuworks.platform.users import Role, create_user
from ecuworks.web.app import create_app
from ecuworks.web.settings import WebSettings

PASSWORD = "correct horse battery"
HTML = {"accept": "text/html"}


@dataclass
class Workstation:
    """A running web UI: its URL, database and settings."""

    url: str
    db: Database
    settings: WebSettings
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def add_user(self, name: str, role: Role) -> None:
        create_user(self.db, name, PASSWORD, role)

    async def login(self, name: str, role: Role | None = None) -> httpx.AsyncClient:
        """A client logged in as ``name`` (created with ``role`` first, if given); its
        ``headers`` carry the session's CSRF token for changing requests."""
        if role is not None:
            self.add_user(name, role)
        client = httpx.AsyncClient(base_url=self.url, headers=HTML, timeout=30)
        self.clients.append(client)  # closed by the fixture
        page = await client.get("/login")
        token = csrf_of(page.text)
        answer = await client.post(
            "/login", data={"csrf": token, "name": name, "password": PASSWORD, "next": "/"}
        )
        assert answer.status_code == 303, answer.text
        client.headers["x-csrf-token"] = csrf_of((await client.get("/")).text)
        return client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


StartWorkstation = Callable[..., Awaitable[Workstation]]


@pytest.fixture
async def start_workstation(tmp_path: Path) -> AsyncIterator[StartWorkstation]:
    """``await start_workstation(db_url=None, home=None, **settings)``: serve the web UI."""
    running: list[Any] = []
    stations: list[Workstation] = []

    async def start(
        db_url: str | None = None, home: Path | None = None, **settings: Any
    ) -> Workstation:
        directory = home or tmp_path / "workstation"
        directory.mkdir(parents=True, exist_ok=True)
        url = db_url or default_url(directory)
        db = open_database(url)
        web = WebSettings(home=directory, db_url=url, **settings)
        server = await serve_asgi(create_app(web, db=db), what="workstation", option="--port")
        running.append((server, db))
        station = Workstation(server.url.rstrip("/"), db, web)
        stations.append(station)
        return station

    yield start
    for station in stations:
        for client in station.clients:
            await client.aclose()
    for server, db in reversed(running):
        await server.close()
        db.close()
