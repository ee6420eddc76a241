"""Fixtures shared across the test tiers."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.postgres import PostgresCluster, postgres_cluster

from ecuworks.pdata.source import DEMO_DIR, open_pdata
from ecuworks.sim.simulator import Simulator

StartSimulator = Callable[..., Awaitable[Simulator]]


@pytest.fixture
async def start_simulator(tmp_path: Path) -> AsyncIterator[StartSimulator]:
    """Start simulated vehicles in-process on free loopback ports; stopped after the test.

    ``await start_simulator("g-series", time_scale=1000, state_file=...)``; every port is
    ephemeral (read them from ``sim.ports``), the time scale defaults to 100.
    """
    started: list[Simulator] = []

    async def start(vehicle: str = "f-series", **options: Any) -> Simulator:
        options.setdefault("time_scale", 100.0)
        for name in ("doip_port", "hsfz_port", "hsfz_udp_port", "control_port", "vci_port"):
            options.setdefault(name, 0)
        simulator = Simulator(vehicle, **options)
        await simulator.start()
        started.append(simulator)
        return simulator

    yield start
    for simulator in reversed(started):
        await simulator.stop()


@pytest.fixture(scope="session")
def demo_pdata_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo P-Data, generated once per test session (``<dir>/repository``, ``root.json``)."""
    home = tmp_path_factory.mktemp("demo-home")
    open_pdata(home)
    return home / DEMO_DIR


@pytest.fixture
def pdata_home(tmp_path: Path, demo_pdata_dir: Path) -> Path:
    """A fresh data directory whose demo P-Data is already there (hard links to the
    session's copy: read it, never write into it; copy a file before tampering with it)."""
    home = tmp_path / "home"
    shutil.copytree(demo_pdata_dir, home / DEMO_DIR, copy_function=os.link)
    return home


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster for the test session (``postgres.database()`` gives a
    fresh database URL)."""
    with postgres_cluster() as cluster:
        yield cluster
