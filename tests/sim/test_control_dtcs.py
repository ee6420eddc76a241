"""``POST /ecus/{addr}/dtcs``: faults injected through the control API, as a tester sees them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import StartSimulator

from ecuworks.sim.simulator import Simulator
from ecuworks.sim.state import MAX_DTCS, VehicleState
from ecuworks.transport.url import open_link
from ecuworks.uds.client import UdsClient
from ecuworks.uds.dtc import Dtc

HOST = "127.0.0.1"
DSC = 0x29  # stores 480A12 and 5E2012 at the factory (f-series profile)
PDC = 0x64  # stores nothing at the factory


async def post(sim: Simulator, path: str, body: Any) -> httpx.Response:
    async with httpx.AsyncClient(
        base_url=f"http://{HOST}:{sim.ports['control']}", trust_env=False, timeout=10
    ) as client:
        return await client.post(path, json=body)


async def state_of(sim: Simulator, address: int) -> dict[str, Any]:
    async with httpx.AsyncClient(
        base_url=f"http://{HOST}:{sim.ports['control']}", trust_env=False, timeout=10
    ) as client:
        state = (await client.get("/state")).json()
    return next(e for e in state["ecus"] if e["address"] == address)


async def read_over_hsfz(sim: Simulator, address: int) -> list[Dtc]:
    async with open_link(f"hsfz://{HOST}:{sim.ports['hsfz']}") as link:
        return await UdsClient(link, address).read_dtcs()


async def test_injected_dtcs_are_in_the_state_and_reported_by_the_ecu(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    r = await post(sim, f"/ecus/{PDC}/dtcs", {"dtcs": [0x801C20, "0x930B23", "b7f33f"]})
    assert r.status_code == 201
    assert r.json() == {
        "address": PDC,
        "name": "PDC",
        "dtcs": ["801C20", "930B23", "B7F33F"],
        "dtc_status": {"801C20": 0x09, "930B23": 0x09, "B7F33F": 0x09},
    }
    pdc = await state_of(sim, PDC)
    assert (pdc["dtcs"], pdc["dtc_status"]) == (r.json()["dtcs"], r.json()["dtc_status"])
    assert await read_over_hsfz(sim, PDC) == [
        Dtc(code=0x801C20, status=0x09),
        Dtc(code=0x930B23, status=0x09),
        Dtc(code=0xB7F33F, status=0x09),
    ]


async def test_a_stored_code_takes_the_new_status_and_is_not_listed_twice(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    r = await post(sim, f"/ecus/0x{DSC:02X}/dtcs", {"dtcs": ["5E2012", 0x123456], "status": 0x2F})
    assert r.status_code == 201
    assert r.json()["dtcs"] == ["480A12", "5E2012", "123456"]
    assert r.json()["dtc_status"] == {"480A12": 0x09, "5E2012": 0x2F, "123456": 0x2F}
    assert await read_over_hsfz(sim, DSC) == [
        Dtc(code=0x480A12, status=0x09),
        Dtc(code=0x5E2012, status=0x2F),
        Dtc(code=0x123456, status=0x2F),
    ]


async def test_an_unknown_ecu_is_404(start_simulator: StartSimulator) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    r = await post(sim, "/ecus/0x99/dtcs", {"dtcs": [0x5E2012]})
    assert r.status_code == 404
    assert "no ECU at 0x99" in r.json()["error"]
    r = await post(sim, "/ecus/DSC/dtcs", {"dtcs": [0x5E2012]})
    assert r.status_code == 422
    assert "decimal (18) or hex (0x12)" in r.json()["error"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"dtcs": [0x1000000]}, "not a 3-byte fault code"),
        ({"dtcs": ["0x1000000"]}, "not a 3-byte fault code"),
        ({"dtcs": [0]}, "not a 3-byte fault code"),
        ({"dtcs": [-1]}, "not a 3-byte fault code"),
        ({"dtcs": [0x5E2012, "P0300"]}, "'P0300' is not a fault code"),
        ({"dtcs": ["0x"]}, "'0x' is not a fault code"),
        ({"dtcs": [True]}, "dtcs"),
        ({"dtcs": [1.5]}, "dtcs"),
        ({"dtcs": []}, "dtcs"),
        ({"dtcs": "5E2012"}, "dtcs"),
        ({}, "dtcs"),
        ({"dtcs": [0x5E2012], "status": 0}, "status"),
        ({"dtcs": [0x5E2012], "status": 256}, "status"),
        ({"dtcs": [0x5E2012], "status": "9"}, "status"),
        ({"dtcs": [0x5E2012], "code": 1}, "code"),
        ([0x5E2012], "body"),
    ],
)
async def test_bad_codes_and_bodies_are_422_and_store_nothing(
    start_simulator: StartSimulator, body: Any, says: str
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    before = await state_of(sim, DSC)
    r = await post(sim, f"/ecus/{DSC}/dtcs", body)
    assert r.status_code == 422, r.text
    assert says in r.json()["error"]
    assert await state_of(sim, DSC) == before


async def test_the_fault_memory_has_a_limit(start_simulator: StartSimulator) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    r = await post(sim, f"/ecus/{DSC}/dtcs", {"dtcs": list(range(1, MAX_DTCS + 2))})
    assert r.status_code == 422
    # DSC holds two already: a full batch would overflow it.
    r = await post(sim, f"/ecus/{DSC}/dtcs", {"dtcs": list(range(1, MAX_DTCS + 1))})
    assert r.status_code == 422
    assert f"keeps at most {MAX_DTCS}" in r.json()["error"]
    assert (await state_of(sim, DSC))["dtcs"] == ["480A12", "5E2012"]


async def test_injected_dtcs_survive_a_restart(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    state_file = tmp_path / "car.json"
    sim = await start_simulator("f-series", time_scale=1000, state_file=state_file)
    r = await post(sim, f"/ecus/{PDC}/dtcs", {"dtcs": [0x801C20], "status": 0x2F})
    assert r.status_code == 201
    assert VehicleState.load(state_file).ecus[PDC].dtcs == [(0x801C20, 0x2F)]
