"""The power guard: no programming on a weak battery, and a pause while the voltage sags."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.conftest import StartSimulator
from tests.execute.test_program_e2e import FAST, control, url_of
from tests.test_cli import run_cli

from ecuworks.execute.progress import Kind, Progress
from ecuworks.execute.runner import RunOptions
from ecuworks.execute.session import apply_plan, make_plan
from ecuworks.pdata.source import open_pdata


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
