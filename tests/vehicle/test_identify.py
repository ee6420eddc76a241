"""Identification end to end against the simulator, over HSFZ, DoIP and CAN through the VCI."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from tests.conftest import StartSimulator
from tests.test_cli import run_cli

from ecuworks.sim.simulator import Simulator
from ecuworks.transport.url import open_link
from ecuworks.uds.client import UdsClient
from ecuworks.vehicle import EcuMode, Identification, identify

HOST = "127.0.0.1"
DME = 0x12


def url_of(sim: Simulator) -> str:
    ports = sim.ports
    if "hsfz" in ports:
        return f"hsfz://{HOST}:{ports['hsfz']}"
    if "doip" in ports:
        return f"doip://{HOST}:{ports['doip']}"
    return f"can://socketcand/can0?host={HOST}&port={ports['vci']}"


async def control(sim: Simulator, method: str, path: str, body: Any = None) -> Any:
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{sim.ports['control']}") as client:
        response = await client.request(method, path, json=body)
    response.raise_for_status()
    return response.json()


async def identify_sim(sim: Simulator, **options: Any) -> Identification:
    options.setdefault("expected", sorted(sim.state.ecus))
    # Loopback answers come in milliseconds; the window only matters when an ECU is silent.
    options.setdefault("timeout", 0.5)
    async with open_link(url_of(sim)) as link:
        return await identify(link, **options)


def assert_matches(ident: Identification, state: dict[str, Any], volts: float) -> None:
    assert ident.vin == state["vin"]
    assert ident.vo is not None
    assert str(ident.vo) == state["vo"]["text"]
    assert ident.to_json()["vo"]["options"] == state["vo"]["options"]
    assert ident.ilevel is not None
    assert {
        "current": str(ident.ilevel.current),
        "last": str(ident.ilevel.last),
        "shipment": str(ident.ilevel.shipment),
    } == state["ilevel"]
    assert ident.battery_volts == pytest.approx(volts, abs=0.01)
    assert ident.svt == {e["address"]: e["svk"] for e in state["ecus"]}
    assert [(e.address, e.state) for e in ident.ecus] == [
        (e["address"], EcuMode.APPLICATION) for e in state["ecus"]
    ]
    assert ident.notes == ()


@pytest.mark.parametrize("vehicle", ["f-series", "g-series", "e-series"])
async def test_identification_matches_the_vehicle(
    start_simulator: StartSimulator, vehicle: str
) -> None:
    sim = await start_simulator(vehicle, time_scale=1000)
    ident = await identify_sim(sim)
    # The gateway reports the terminal voltage (battery under the ignition's load), which
    # /state does not show: the simulator's own measurement is the reference.
    assert_matches(ident, await control(sim, "GET", "/state"), sim.gateway.volts())
    assert ident.gateway == sim.state.gateway_address


async def test_the_gateway_is_found_without_being_named(start_simulator: StartSimulator) -> None:
    sim = await start_simulator("e-series", time_scale=1000)
    ident = await identify_sim(sim, expected=())
    assert ident.gateway == 0x40  # the CAS holds VIN, VO and I-levels on E-series cars
    assert ident.ilevel is not None
    assert set(ident.svt) == set(sim.state.ecus)


async def test_json_has_the_plans_svt_shape_and_a_stable_fingerprint(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    first, second = await identify_sim(sim), await identify_sim(sim)
    document = first.to_json()
    assert document["schema"] == 1
    assert document["svt"][str(DME)] == sim.state.ecus[DME].svk
    assert document["battery"]["volts"] == first.battery_volts
    assert first.fingerprint == second.fingerprint == document["fingerprint"]
    assert json.loads(json.dumps(document)) == document
    await control(sim, "POST", f"/ecus/{DME}/replace")
    assert (await identify_sim(sim)).fingerprint != first.fingerprint


async def test_a_silent_expected_ecu_is_reported_not_answering(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("g-series", time_scale=1000)
    await control(sim, "POST", "/faults", {"kind": "silence", "ecu": DME})
    ident = await identify_sim(sim)
    dme = ident.ecu(DME)
    assert (dme.state, dme.svk) == (EcuMode.NOT_ANSWERING, ())
    assert DME not in ident.svt
    others = [e.state for e in ident.ecus if e.address != DME]
    assert set(others) == {EcuMode.APPLICATION}
    # Not expected, not found: a silent ECU the caller does not know of is simply absent.
    unexpected = await identify_sim(sim, expected=())
    assert DME not in [e.address for e in unexpected.ecus]


async def test_an_ecu_missing_the_functional_read_is_asked_again_physically(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    # Ignores exactly one request: the vehicle-wide SVK read.
    await control(sim, "POST", "/faults", {"kind": "silence", "ecu": DME, "count": 1})
    ident = await identify_sim(sim)
    assert ident.ecu(DME).state == EcuMode.APPLICATION
    assert ident.svt[DME] == sim.state.ecus[DME].svk


# The three tests below pass a timeout of 30 s and give identify 10 s: waiting out the
# timeout anywhere (as identify once did for every vehicle-wide read) fails them, however
# slow the machine. At time scale 1 the buses and the ECUs keep real time.


async def test_with_pdata_identify_ends_once_every_expected_ecu_answered(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("g-series", time_scale=1)
    async with asyncio.timeout(10):
        ident = await identify_sim(sim, timeout=30)
    assert len(ident.ecus) == len(sim.state.ecus) >= 40
    assert {e.state for e in ident.ecus} == {EcuMode.APPLICATION}
    assert ident.svt == {a: ecu.svk for a, ecu in sim.state.ecus.items()}


async def test_without_pdata_identify_collects_answers_for_a_short_window_only(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("g-series", time_scale=1)
    async with asyncio.timeout(10):
        ident = await identify_sim(sim, expected=(), timeout=30)
    assert ident.svt == {a: ecu.svk for a, ecu in sim.state.ecus.items()}
    assert {e.state for e in ident.ecus} == {EcuMode.APPLICATION}


async def test_a_silent_expected_ecu_costs_one_short_retry_not_the_timeout(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("g-series", time_scale=1)
    await control(sim, "POST", "/faults", {"kind": "silence", "ecu": DME})
    async with asyncio.timeout(10):
        ident = await identify_sim(sim, timeout=30, retry_timeout=0.5)
    assert ident.ecu(DME).state == EcuMode.NOT_ANSWERING
    assert {e.state for e in ident.ecus if e.address != DME} == {EcuMode.APPLICATION}


async def test_a_blank_replacement_part_is_in_its_bootloader(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("e-series", time_scale=1000)
    address = next(a for a in sim.state.ecus if a != sim.state.gateway_address)
    await control(sim, "POST", f"/ecus/{address}/replace")
    ident = await identify_sim(sim)
    assert ident.ecu(address).state == EcuMode.BOOTLOADER
    assert list(ident.svt.get(address, [])) == sim.state.ecus[address].svk
    others = {e.state for e in ident.ecus if e.address != address}
    assert others == {EcuMode.APPLICATION}


async def test_an_ecu_in_the_programming_session_is_in_its_bootloader(
    start_simulator: StartSimulator,
) -> None:
    # Real time: the session must outlive S3 (5 s) while identification runs.
    sim = await start_simulator("f-series", time_scale=1)
    async with open_link(url_of(sim)) as link:
        client = UdsClient(link, DME)
        await client.request(bytes.fromhex("1003"))
        await client.request(bytes.fromhex("1002"))
        ident = await identify(link, expected=sorted(sim.state.ecus))
    assert ident.ecu(DME).state == EcuMode.BOOTLOADER
    assert {e.state for e in ident.ecus if e.address != DME} == {EcuMode.APPLICATION}


async def test_a_gateway_in_its_bootloader_still_gives_the_vin(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("g-series", time_scale=1000)
    gateway = sim.state.gateway_address
    await control(sim, "POST", f"/ecus/{gateway}/replace")
    ident = await identify_sim(sim, gateway=gateway)
    assert ident.vin == sim.state.vin
    assert (ident.vo, ident.ilevel) == (None, None)
    # Its bootloader still measures the supply: a recovery needs to know it is safe.
    assert ident.battery_volts == pytest.approx(sim.gateway.volts(), abs=0.01)
    assert ident.ecu(gateway).state == EcuMode.BOOTLOADER
    assert len(ident.notes) == 2


async def test_cli_prints_the_identification_as_json(
    start_simulator: StartSimulator, pdata_home: Any
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    await control(sim, "POST", "/faults", {"kind": "silence", "ecu": DME})
    code, out, err = await run_cli(
        "--home", str(pdata_home), "identify", "--vci", url_of(sim), "--json", "--timeout", "0.5"
    )
    assert code == 0, err
    document = json.loads(out)
    state = await control(sim, "GET", "/state")
    assert (document["schema"], document["vin"]) == (1, state["vin"])
    assert document["vo"]["options"] == state["vo"]["options"]
    assert document["ilevel"] == state["ilevel"]
    assert document["battery"]["volts"] == pytest.approx(sim.gateway.volts(), abs=0.01)
    by_address = {e["address"]: e for e in document["ecus"]}
    assert set(by_address) == {e["address"] for e in state["ecus"]}
    assert by_address[DME]["state"] == "not answering"
    assert by_address[DME]["name"] == "DME"
    assert document["svt"] == {
        str(e["address"]): e["svk"] for e in state["ecus"] if e["address"] != DME
    }


async def test_cli_prints_a_table_and_fails_with_5_when_nothing_answers(
    start_simulator: StartSimulator, pdata_home: Any
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    code, out, err = await run_cli("--home", str(pdata_home), "identify", "--vci", url_of(sim))
    assert code == 0, err
    assert sim.state.vin in out
    assert "DME" in out
    assert "F030-24-03-550" in out or sim.state.ilevel_current in out
    code, _, err = await run_cli("--home", str(pdata_home), "identify", "--vci", f"hsfz://{HOST}:1")
    assert code == 5, err
