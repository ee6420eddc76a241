"""Flashes cut short: the ECU keeps its bootloader, or is bricked and replaced.

DOMAIN.md: "An interrupted application flash leaves the ECU in its bootloader, still
answering, and a re-flash recovers it; an interrupted bootloader flash can leave an ECU
dead." Each test breaks a real flash by our client over loopback sockets, then does what a
workshop does next: reconnect and reset the ECU (as a tester would, rather than wait for
its 5 s S3 timeout), look at ``/state``, and flash again or swap the part.
"""

from __future__ import annotations

import pytest
from tests.conftest import StartSimulator
from tests.sim.flashing import (
    HOST,
    PausedImage,
    State,
    cancel,
    client_for,
    control,
    ecu_entry,
    enter_programming,
    erase,
    flash,
    image_for,
    newer,
    read_state,
    region_entry,
    start_paused_download,
    wait_for_state,
)

from ecuworks.errors import LinkError, LinkTimeout
from ecuworks.transport.doip import DoipLink
from ecuworks.transport.hsfz import HsfzLink
from ecuworks.wire.sgbm import parse_svk

TRSVC = 0x71  # an Ethernet ECU with one application region (11 blocks of 32 KiB)
DME = 0x12  # a powertrain-CAN ECU with a bootloader and two application regions


def _stays_in_bootloader(state: State, address: int) -> bool:
    ecu = ecu_entry(state, address)
    return ecu["mode"] == "bootloader" and ecu["session"] == 0x01


async def test_a_tester_killed_mid_application_download_leaves_the_bootloader_then_reflash(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    port = sim.ports["control"]
    before = ecu_entry(await read_state(port), TRSVC)
    region = region_entry(before, "SWFL")
    paused = PausedImage(
        image_for(region, newer(region["unit"])), before["timing"]["max_block_length"], after=3
    )
    async with DoipLink(HOST, sim.ports["doip"]) as link:
        client = client_for(link, before)
        await enter_programming(client, before)
        await erase(client, region)
        download = await start_paused_download(client, region, paused)
        await cancel(download)  # the tester dies after 3 of 11 blocks; its socket closes

    async with DoipLink(HOST, sim.ports["doip"]) as link:
        await client_for(link, before).ecu_reset(0x01)  # 11 01 from the next tester
        state = await wait_for_state(port, lambda s: _stays_in_bootloader(s, TRSVC))
        after = ecu_entry(state, TRSVC)
        assert region_entry(after, "SWFL") == {**region, "unit": None, "valid": False}
        assert after["svk"] == [u for u in before["svk"] if u != region["unit"]]
        # Still answering from its bootloader, and saying what it holds.
        svk = await client_for(link, after).read_did(0xF101)
        assert [str(unit) for unit in parse_svk(svk)] == after["svk"]

        written = await flash(link, after)

    recovered = ecu_entry(await read_state(port), TRSVC)
    assert recovered["mode"] == "application"
    assert str(written[0]) in recovered["svk"]
    assert recovered["programming_counter"] == before["programming_counter"] + 1


async def test_a_connection_dropped_mid_download_leaves_the_bootloader_then_reflash(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    port = sim.ports["control"]
    before = ecu_entry(await read_state(port), TRSVC)
    region = region_entry(before, "SWFL")
    block = before["timing"]["max_block_length"]
    async with HsfzLink(HOST, sim.ports["hsfz"]) as link:
        client = client_for(link, before)
        await enter_programming(client, before)
        await erase(client, region)
        # The gateway cuts the socket halfway through the 4th TransferData block.
        await control(port, "POST", "/faults", {"kind": "drop", "after_bytes": 3 * block + 2000})
        acknowledged: list[int] = []
        with pytest.raises(LinkError):
            await client.download(
                region["address"],
                region["size"],
                [image_for(region, newer(region["unit"]))],
                memory_format=(4, 4),
                progress=lambda sent, _total: acknowledged.append(sent),
            )
        assert len(acknowledged) == 3

    async with HsfzLink(HOST, sim.ports["hsfz"]) as link:
        await client_for(link, before).ecu_reset(0x01)
        state = await wait_for_state(port, lambda s: _stays_in_bootloader(s, TRSVC))
        assert region_entry(ecu_entry(state, TRSVC), "SWFL")["valid"] is False
        written = await flash(link, ecu_entry(state, TRSVC))

    recovered = ecu_entry(await read_state(port), TRSVC)
    assert recovered["mode"] == "application"
    assert str(written[0]) in recovered["svk"]


async def test_an_interrupted_bootloader_flash_bricks_the_ecu_and_a_new_part_is_flashed(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    port = sim.ports["control"]
    before = ecu_entry(await read_state(port), DME)
    btld = region_entry(before, "BTLD")
    paused = PausedImage(
        image_for(btld, newer(btld["unit"])), before["timing"]["max_block_length"], after=1
    )
    async with DoipLink(HOST, sim.ports["doip"]) as link:
        client = client_for(link, before)
        await enter_programming(client, before)
        await erase(client, btld)
        await cancel(await start_paused_download(client, btld, paused))

    async with DoipLink(HOST, sim.ports["doip"]) as link:
        client = client_for(link, before)
        await client.ecu_reset(0x01, wait=False)  # its answer is the last thing it says
        state = await wait_for_state(port, lambda s: ecu_entry(s, DME)["mode"] == "bricked")
        assert region_entry(ecu_entry(state, DME), "BTLD")["valid"] is False
        with pytest.raises(LinkTimeout):
            await client.read_did(0xF190)
        with pytest.raises(LinkTimeout):
            await client.tester_present()

        blank = (await control(port, "POST", f"/ecus/{DME}/replace")).json()
        assert blank["mode"] == "bootloader"
        assert blank["svk"] == [before["hardware"], btld["unit"]]  # hardware + its bootloader
        assert ecu_entry(await read_state(port), DME) == blank
        written = await flash(link, blank)  # both application regions; the BTLD is fine
        assert [r["class"] for r in blank["regions"]].count("SWFL") == len(written) == 2
        assert (await client_for(link, blank).read_did(0xF190)) == sim.state.vin.encode()

    replaced = ecu_entry(await read_state(port), DME)
    assert replaced["mode"] == "application"
    assert replaced["svk"] == [before["hardware"], btld["unit"], *map(str, written)]
    assert replaced["programming_counter"] == 1
