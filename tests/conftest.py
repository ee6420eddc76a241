"""Fixtures shared across the test tiers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

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
