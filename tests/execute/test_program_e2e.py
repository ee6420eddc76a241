"""The main job end to end, as a technician runs it: `plan`, `program`, `identify`, on three cars.

Each test starts a simulated vehicle in this process and drives the real command line in
a child process over loopback: HSFZ (f-series), DoIP (g-series) and ISO-TP on D-CAN through
the VCI's socketcand bridge (e-series). What counts is the simulator's own ``/state``:
every ECU's SVK equals the plan's target, the I-level triple moved on, no DTC is left, no
ECU is bricked; and identification afterwards says the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import StartSimulator
from tests.test_cli import run_cli

from ecuworks.sim.simulator import Simulator

HOST = "127.0.0.1"
# The simulator runs 100 times faster than real time, so its 5 s S3 timeout is 50 ms of
# real time: tester present has to come more often than the default 1.5 s.
FAST = ("--tester-present", "0.01")


def url_of(sim: Simulator, vehicle: str) -> str:
    ports = sim.ports
    if vehicle == "f-series":
        return f"hsfz://{HOST}:{ports['hsfz']}"
    if vehicle == "g-series":
        return f"doip://{HOST}:{ports['doip']}"
    return f"can://socketcand/can0?host={HOST}&port={ports['vci']}"


async def control(sim: Simulator, method: str, path: str, body: Any = None) -> Any:
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{sim.ports['control']}") as client:
        response = await client.request(method, path, json=body, timeout=10)
    assert response.is_success, response.text
    return response.json()


def svt_of(state: dict[str, Any]) -> dict[str, list[str]]:
    return {str(ecu["address"]): sorted(ecu["svk"]) for ecu in state["ecus"]}


@pytest.mark.parametrize("vehicle", ["f-series", "g-series", "e-series"])
async def test_program_brings_the_vehicle_to_the_latest_ilevel(
    vehicle: str, start_simulator: StartSimulator, pdata_home: Path, tmp_path: Path
) -> None:
    sim = await start_simulator(vehicle)
    url = url_of(sim, vehicle)
    await control(sim, "POST", "/battery", {"charger": True})
    before = await control(sim, "GET", "/state")
    home = ("--home", str(pdata_home))

    plan_file = tmp_path / "plan.json"
    code, _, err = await run_cli(*home, "plan", "--vci", url, "--json", "-o", str(plan_file))
    assert code == 0, err
    plan = json.loads(plan_file.read_text())
    assert plan["target_ilevel"] != before["ilevel"]["current"]
    assert plan["actions"], "the latest I-level changes something on every demo car"

    code, out, err = await run_cli(
        *home, "program", "--vci", url, "--target", "latest", "--yes", "--json", *FAST
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["outcome"] == "done"
    assert report["final_check"] is True

    after = await control(sim, "GET", "/state")
    target = {k: sorted(v) for k, v in plan["target_svt"].items()}
    actual = svt_of(after)
    assert {k: actual[k] for k in target} == target
    assert after["ilevel"]["current"] == plan["target_ilevel"]
    assert after["ilevel"]["last"] == before["ilevel"]["current"]
    assert after["ilevel"]["shipment"] == before["ilevel"]["shipment"]
    assert [e["name"] for e in after["ecus"] if e["mode"] != "application"] == []
    assert [e["name"] for e in after["ecus"] if e["dtcs"]] == []

    code, out, err = await run_cli(*home, "identify", "--vci", url, "--json")
    assert code == 0, err
    seen = json.loads(out)
    assert {k: sorted(v) for k, v in seen["svt"].items() if k in target} == target
    assert seen["ilevel"]["current"] == plan["target_ilevel"]


async def test_a_plan_for_a_vehicle_that_changed_is_refused(
    start_simulator: StartSimulator, pdata_home: Path, tmp_path: Path
) -> None:
    sim = await start_simulator("f-series")
    url = url_of(sim, "f-series")
    await control(sim, "POST", "/battery", {"charger": True})
    home = ("--home", str(pdata_home))
    plan_file = tmp_path / "plan.json"
    code, _, err = await run_cli(*home, "plan", "--vci", url, "-o", str(plan_file))
    assert code == 0, err
    # The vehicle changes after planning: another tester programs it to the target.
    code, _, err = await run_cli(*home, "program", "--vci", url, "--yes", *FAST)
    assert code == 0, err
    counters = {
        e["address"]: e["programming_counter"]
        for e in (await control(sim, "GET", "/state"))["ecus"]
    }

    code, _, err = await run_cli(*home, "apply", str(plan_file), "--vci", url, "--yes", *FAST)
    assert code == 3
    assert "the vehicle changed since the plan was made" in err
    after = await control(sim, "GET", "/state")
    assert {e["address"]: e["programming_counter"] for e in after["ecus"]} == counters
