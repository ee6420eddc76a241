"""The battery and the control API's faults, met by our client in the middle of a flash.

Voltages: ``POST /battery`` sets the battery's resting voltage; the ECUs see the terminal
voltage under load (sim/battery.py: 10 mOhm, 20 A with the ignition on, 3 A more per ECU
in its programming session; a charger holds ~14 V). Flash work is refused below 10.5 V
(NRC 0x93) and every ECU resets below 10.0 V. A battery at 10.4 V therefore gives 10.2 V
idle and 10.17 V with one ECU programming: inside the refusal window, above the brownout.
"""

from __future__ import annotations

import asyncio

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
    write_region,
)

from ecuworks.errors import LinkTimeout, NegativeResponse
from ecuworks.sim.simulator import Simulator
from ecuworks.transport.discovery import power_mode
from ecuworks.transport.doip import DoipLink
from ecuworks.uds.client import UdsClient
from ecuworks.wire.doip import PowerMode

TRSVC = 0x71
ZGW = 0x10
BATTERY_MV = 0xF1A2
VOLTAGE_TOO_LOW = 0x93


async def _millivolts(link: DoipLink) -> int:
    """DID F1A2 of the gateway: the battery as the vehicle measures it."""
    return int.from_bytes(await UdsClient(link, ZGW).read_did(BATTERY_MV), "big")


async def _power_mode(sim: Simulator) -> int:
    return (await power_mode(HOST, sim.ports["doip"], timeout=5)).mode


async def _ready(sim: Simulator) -> None:
    """Wait until the DoIP entity reports power mode ready (a sag has ended).

    The power mode is the one place the terminal voltage shows without a diagnostic
    request that would itself count against the ECUs; polled, bounded, ~ms apart.
    """
    for _ in range(500):
        if await _power_mode(sim) == PowerMode.READY:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the power mode never came back to ready")


async def test_a_low_battery_refuses_erase_and_download_with_0x93_until_the_charger_is_on(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    port = sim.ports["control"]
    ecu = ecu_entry(await read_state(port), TRSVC)
    region = region_entry(ecu, "SWFL")
    image = image_for(region, newer(region["unit"]))
    await control(port, "POST", "/battery", {"volts": 10.4, "charger": False})
    async with DoipLink(HOST, sim.ports["doip"]) as link:
        assert await _millivolts(link) == 10_200
        assert await _power_mode(sim) == PowerMode.NOT_READY
        client = client_for(link, ecu)
        await enter_programming(client, ecu)
        with pytest.raises(NegativeResponse) as refused:
            await erase(client, region)
        assert (refused.value.service, refused.value.nrc) == (0x31, VOLTAGE_TOO_LOW)
        assert await _millivolts(link) == 10_170  # one ECU in its programming session

        await control(port, "POST", "/battery", {"charger": True})
        assert await _power_mode(sim) == PowerMode.READY
        assert await _millivolts(link) > 13_800
        await erase(client, region)

        await control(port, "POST", "/battery", {"charger": False})
        with pytest.raises(NegativeResponse) as refused:
            await write_region(client, region, image)
        assert (refused.value.service, refused.value.nrc) == (0x34, VOLTAGE_TOO_LOW)

        await control(port, "POST", "/battery", {"charger": True})
        await write_region(client, region, image)
        assert await client.routine(0xFF01) == b"\x00"
        await client.ecu_reset(0x01)

    after = ecu_entry(await read_state(port), TRSVC)
    assert after["mode"] == "application"
    assert str(newer(region["unit"])) in after["svk"]


async def test_a_sag_below_10_volts_mid_download_resets_the_ecu_into_its_bootloader(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    port = sim.ports["control"]
    await control(port, "POST", "/battery", {"charger": True})
    ecu = ecu_entry(await read_state(port), TRSVC)
    region = region_entry(ecu, "SWFL")
    paused = PausedImage(
        image_for(region, newer(region["unit"])), ecu["timing"]["max_block_length"], after=4
    )

    def reset_by_the_sag(state: State) -> bool:
        now = ecu_entry(state, TRSVC)
        return now["session"] == 0x01 and now["mode"] == "bootloader"

    async with DoipLink(HOST, sim.ports["doip"]) as link:
        client = client_for(link, ecu)
        await enter_programming(client, ecu)
        await erase(client, region)
        download = await start_paused_download(client, region, paused)
        try:
            # 9.0 V for 300 simulated seconds (0.3 s real), starting 0.5 s (simulated) on.
            sag = {"kind": "sag", "at": 0.5, "volts": 9.0, "duration": 300.0}
            await control(port, "POST", "/faults", sag)
            await wait_for_state(port, reset_by_the_sag, what="the ECU reset by the sag")
            await _ready(sim)  # the sag is over
        except BaseException:
            await cancel(download)
            raise
        paused.resume.set()
        # The ECU lost its download with its RAM: block 5 lands in the default session.
        with pytest.raises(NegativeResponse) as refused:
            await download
        assert (refused.value.service, refused.value.nrc) == (0x36, 0x7F)
        state = await read_state(port)
        assert region_entry(ecu_entry(state, TRSVC), "SWFL")["valid"] is False

        written = await flash(link, ecu_entry(state, TRSVC))

    after = ecu_entry(await read_state(port), TRSVC)
    assert after["mode"] == "application"
    assert str(written[0]) in after["svk"]


async def test_an_injected_nrc_fails_our_download_at_the_third_block(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    port = sim.ports["control"]
    ecu = ecu_entry(await read_state(port), TRSVC)
    region = region_entry(ecu, "SWFL")
    async with DoipLink(HOST, sim.ports["doip"]) as link:
        client = client_for(link, ecu)
        await enter_programming(client, ecu)
        await erase(client, region)
        fault = {"kind": "nrc", "ecu": TRSVC, "service": 0x36, "nth": 3, "nrc": 0x72}
        await control(port, "POST", "/faults", fault)
        acknowledged: list[int] = []
        with pytest.raises(NegativeResponse) as refused:
            await client.download(
                region["address"],
                region["size"],
                [image_for(region, newer(region["unit"]))],
                memory_format=(4, 4),
                progress=lambda sent, _total: acknowledged.append(sent),
            )
    assert (refused.value.service, refused.value.nrc, refused.value.target) == (0x36, 0x72, TRSVC)
    assert len(acknowledged) == 2  # blocks 1 and 2 went through; block 3 was refused
    assert (await control(port, "GET", "/faults")).json() == {"faults": []}  # it fired once


async def test_a_silenced_ecu_times_out_and_answers_once_the_fault_is_removed(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    port = sim.ports["control"]
    vin = sim.state.vin.encode()
    fault = (await control(port, "POST", "/faults", {"kind": "silence", "ecu": TRSVC})).json()
    async with DoipLink(HOST, sim.ports["doip"]) as link:
        silent = client_for(link, ecu_entry(await read_state(port), TRSVC))
        with pytest.raises(LinkTimeout):
            await silent.read_did(0xF190)
        assert await UdsClient(link, ZGW).read_did(0xF190) == vin  # the others still answer
        await control(port, "DELETE", f"/faults/{fault['id']}")
        assert await silent.read_did(0xF190) == vin
