"""The power guard: no programming on a weak battery, and a pause while the voltage sags."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import StartSimulator
from tests.execute.crashing import cut_at_first_bootloader_flash
from tests.execute.test_program_e2e import FAST, control, url_of
from tests.test_cli import run_cli

from ecuworks.errors import Refused
from ecuworks.execute.journal import Journal
from ecuworks.execute.progress import Kind, Progress
from ecuworks.execute.runner import RunOptions
from ecuworks.execute.session import JOURNAL_FILE, apply_plan, make_plan, resume_session
from ecuworks.pdata.source import PData, open_pdata
from ecuworks.sim.simulator import Simulator


async def test_program_refuses_a_battery_at_12_2_volts_and_writes_nothing(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series")
    url = url_of(sim, "f-series")
    await control(sim, "POST", "/battery", {"volts": 12.2, "charger": False})
    before = await control(sim, "GET", "/state")

    code, _, err = await run_cli("--home", str(pdata_home), "program", "--vci", url, "--yes", *FAST)

    assert code == 3
    # The gateway measures the battery under the car's load: a little below the 12.2 V set.
    found = re.search(r"battery (\d+\.\d\d) V is below the 13\.00 V programming needs", err)
    assert found is not None, err
    assert 11.5 < float(found.group(1)) <= 12.2
    assert "connect a charger" in err
    after = await control(sim, "GET", "/state")
    counters = [(e["address"], e["programming_counter"], e["svk"]) for e in before["ecus"]]
    assert [(e["address"], e["programming_counter"], e["svk"]) for e in after["ecus"]] == counters
    assert after["ilevel"] == before["ilevel"]


async def test_a_sag_pauses_new_units_until_the_voltage_is_back(
    start_simulator: StartSimulator, pdata_home: Path, tmp_path: Path
) -> None:
    sim = await start_simulator("f-series")
    url = url_of(sim, "f-series")
    sim.set_battery(volts=None, charger=True)
    pdata = open_pdata(pdata_home)
    planned = await make_plan(url, pdata)
    events: list[Progress] = []
    paused = asyncio.Event()
    first_lane_unit = asyncio.Event()

    def progress(event: Progress) -> None:
        events.append(event)
        if event.kind is Kind.POWER and event.status == "paused":
            paused.set()
        if event.kind is Kind.BYTES and event.ecu not in (None, planned.plan.gateway):
            first_lane_unit.set()

    async def sag_and_recover() -> None:
        await first_lane_unit.wait()
        sim.set_battery(volts=12.0, charger=False)  # the charger's clamp came off
        await paused.wait()
        sim.set_battery(volts=None, charger=True)  # clamped on again

    options = RunOptions(tester_present_s=0.01, voltage_poll_s=0.01, pause_limit_s=60)
    async with asyncio.timeout(120):
        helper = asyncio.create_task(sag_and_recover())
        report = await apply_plan(
            url, planned.plan, pdata, tmp_path, options=options, progress=progress
        )
        await helper

    assert report.outcome == "done"
    assert report.pauses >= 1
    assert report.min_volts is not None
    assert report.min_volts < 12.55
    # Between the pause and its end, no unit started.
    statuses = [(e.kind, e.status) for e in events]
    start = statuses.index((Kind.POWER, "paused"))
    end = statuses.index((Kind.POWER, "resumed"), start)
    assert (Kind.ACTION, "Started") not in statuses[start:end]
    assert (Kind.ACTION, "Started") in statuses[end:]
    state = await control(sim, "GET", "/state")
    assert [e["name"] for e in state["ecus"] if e["mode"] != "application"] == []


async def interrupted(sim: Simulator, pdata: PData, home: Path) -> dict[str, Any]:
    """An f-series session cut off at its first bootloader flash; the car's state then."""
    await cut_at_first_bootloader_flash(sim, pdata, home)
    return await control(sim, "GET", "/state")


def counters(state: dict[str, Any]) -> list[tuple[int, int, Any]]:
    return [(e["address"], e["programming_counter"], e["svk"]) for e in state["ecus"]]


async def test_resume_waits_for_a_low_battery_and_goes_on_once_it_recovers(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series")
    pdata = open_pdata(pdata_home)
    cut_off = await interrupted(sim, pdata, pdata_home)
    sim.set_battery(volts=12.3, charger=False)  # the clamp came off while the laptop rebooted
    waiting: list[Progress] = []
    at_wait: list[dict[str, Any]] = []

    def progress(event: Progress) -> None:
        if event.kind is Kind.POWER and event.status == "paused" and not waiting:
            waiting.append(event)
            at_wait.append(sim.state_json())
            sim.set_battery(volts=None, charger=True)  # the technician clamps it on again

    options = RunOptions(tester_present_s=0.01, voltage_poll_s=0.01, pause_limit_s=60)
    async with asyncio.timeout(120):
        report = await resume_session(
            url_of(sim, "f-series"), pdata, pdata_home, options=options, progress=progress
        )

    assert report.outcome == "done"
    message = waiting[0].message
    assert re.search(r"battery 1[12]\.\d\d V is below the 13\.00 V needed to go on", message)
    assert counters(at_wait[0]) == counters(cut_off)  # nothing was written while it waited


async def test_resume_refuses_a_battery_that_stays_low_and_writes_nothing(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series")
    pdata = open_pdata(pdata_home)
    cut_off = await interrupted(sim, pdata, pdata_home)
    sim.set_battery(volts=12.2, charger=False)
    options = RunOptions(tester_present_s=0.01, voltage_poll_s=0.01, pause_limit_s=0.5)

    with pytest.raises(Refused, match=r"battery 1[12]\.\d\d V is below the 13\.00 V") as refused:
        await resume_session(url_of(sim, "f-series"), pdata, pdata_home, options=options)

    assert refused.value.check == "voltage"
    assert counters(await control(sim, "GET", "/state")) == counters(cut_off)
    with Journal.open(pdata_home / JOURNAL_FILE) as journal:
        assert journal.unfinished() is not None  # still there for the next resume
