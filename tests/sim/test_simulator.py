"""The assembled simulator: each generation's sockets serve its vehicle."""

from __future__ import annotations

import asyncio

import httpx
from tests.conftest import StartSimulator

from ecuworks.errors import LinkError
from ecuworks.transport.doip import DoipLink
from ecuworks.transport.hsfz import HsfzLink
from ecuworks.transport.url import open_link
from ecuworks.uds.client import UdsClient
from ecuworks.wire.sgbm import parse_svk


async def test_f_series_answers_over_hsfz_and_doip(start_simulator: StartSimulator) -> None:
    sim = await start_simulator("f-series")
    assert set(sim.ports) == {"doip", "hsfz", "hsfz-udp", "control"}
    vin = sim.state.vin.encode()
    for link in (
        HsfzLink("127.0.0.1", sim.ports["hsfz"]),
        DoipLink("127.0.0.1", sim.ports["doip"]),
    ):
        async with link:
            addresses = [0x10, 0x12, 0x60, 0x63]
            vins = await asyncio.gather(*(UdsClient(link, a).read_did(0xF190) for a in addresses))
            assert vins == [vin] * 4
            svk = parse_svk(await UdsClient(link, 0x12).read_did(0xF101))
            assert [str(u) for u in svk] == sim.state.ecus[0x12].svk


async def test_e_series_answers_through_the_vci_bridge(start_simulator: StartSimulator) -> None:
    sim = await start_simulator("e-series")
    assert set(sim.ports) == {"vci", "control"}
    async with open_link(f"can://socketcand/can0?host=127.0.0.1&port={sim.ports['vci']}") as link:
        gateway = sim.state.gateway_address
        assert await UdsClient(link, gateway).read_did(0xF190) == sim.state.vin.encode()


async def test_state_is_served_and_matches_the_vehicle(start_simulator: StartSimulator) -> None:
    sim = await start_simulator("g-series")
    async with httpx.AsyncClient() as client:
        state = (await client.get(f"http://127.0.0.1:{sim.ports['control']}/state")).json()
    assert state["vin"] == sim.state.vin
    assert len(state["ecus"]) >= 40
    assert {"vin", "series", "vo", "ilevel", "battery", "ecus"} <= set(state)


async def test_one_drop_fault_cuts_one_connection_whatever_its_protocol(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("f-series")
    control = f"http://127.0.0.1:{sim.ports['control']}"
    async with (
        HsfzLink("127.0.0.1", sim.ports["hsfz"]) as hsfz,
        DoipLink("127.0.0.1", sim.ports["doip"]) as doip,
    ):
        async with httpx.AsyncClient() as client:
            added = await client.post(f"{control}/faults", json={"kind": "drop", "after_bytes": 40})
        assert added.status_code == 201

        async def read_until_cut() -> int:
            for reads in range(20):  # 11 bytes a request: the fault strikes within four
                try:
                    await UdsClient(hsfz, 0x12).read_did(0xF190)
                except LinkError:
                    return reads
            return 20

        reads = await read_until_cut()
        assert 1 <= reads < 20
        # the fault is spent: the other protocol's connection is not cut as well
        for _ in range(10):
            assert await UdsClient(doip, 0x12).read_did(0xF190) == sim.state.vin.encode()


RETROFIT_CAMERA = {
    "address": 0x6F,
    "name": "TRSVC",
    "variant": "TRSVC_F030",
    "bus": "k-can",
    "hardware": "HWEL-00F37010-001.002.003",
    "cafd": ["CAFD-00F37050-001.000.001"],
    "max_block_length": 0x0802,
    "erase_ms_per_kib": 20.0,
    "write_kib_s": 200.0,
    "boot_ms": 400.0,
    "security_secret": "00112233445566778899aabbccddeeff",
    "coding": {"0x3000": "01 02"},
    "regions": [
        {"class": "BTLD", "address": 0, "size": "64 KiB", "unit": "BTLD-00F37060-001.000.000"},
        {
            "class": "SWFL",
            "address": 0x10000,
            "size": "256 KiB",
            "unit": "SWFL-00F37080-001.000.000",
        },
    ],
}


async def test_a_retrofitted_ecu_is_installed_and_answers(start_simulator: StartSimulator) -> None:
    sim = await start_simulator("f-series")
    control = f"http://127.0.0.1:{sim.ports['control']}"
    async with httpx.AsyncClient() as client:
        installed = await client.post(f"{control}/ecus", json=RETROFIT_CAMERA)
        assert installed.status_code == 201, installed.text
        taken = await client.post(f"{control}/ecus", json=RETROFIT_CAMERA)
        assert taken.status_code == 422
        assert "0x6F" in taken.json()["error"]
        state = (await client.get(f"{control}/state")).json()
    camera = next(e for e in state["ecus"] if e["address"] == 0x6F)
    assert camera["name"] == "TRSVC"
    assert camera["mode"] == "application"
    async with HsfzLink("127.0.0.1", sim.ports["hsfz"]) as link:
        svk = parse_svk(await UdsClient(link, 0x6F).read_did(0xF101))
    assert [str(unit) for unit in svk] == camera["svk"]


async def test_a_retrofit_on_a_bus_the_car_lacks_is_refused(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("f-series")
    control = f"http://127.0.0.1:{sim.ports['control']}"
    async with httpx.AsyncClient() as client:
        refused = await client.post(f"{control}/ecus", json={**RETROFIT_CAMERA, "bus": "most"})
    assert refused.status_code == 422
    assert "most" in refused.json()["error"]
