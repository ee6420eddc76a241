"""The assembled simulator: each generation's sockets serve its vehicle."""

from __future__ import annotations

import asyncio

import httpx
from tests.conftest import StartSimulator

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
