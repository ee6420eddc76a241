"""Pause and abort by hand: at safe points only, and an aborted session resumes to its target."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.conftest import StartSimulator
from tests.execute.test_program_e2e import control, svt_of, url_of

from ecuworks.execute.control import Aborted, RunControl
from ecuworks.execute.journal import Journal, Status
from ecuworks.execute.progress import Kind, Progress
from ecuworks.execute.runner import RunOptions
from ecuworks.execute.session import JOURNAL_FILE, apply_plan, make_plan, resume_session
from ecuworks.pdata.source import open_pdata


def _options(run_control: RunControl) -> RunOptions:
    return RunOptions(tester_present_s=0.01, voltage_poll_s=0.01, control=run_control)


async def test_a_pause_after_the_gateway_holds_every_other_ecu_until_resumed(
    start_simulator: StartSimulator, pdata_home: Path, tmp_path: Path
) -> None:
    sim = await start_simulator("f-series")
    url = url_of(sim, "f-series")
    sim.set_battery(volts=None, charger=True)
    pdata = open_pdata(pdata_home)
    plan = (await make_plan(url, pdata)).plan
    assert plan.gateway in plan.ecus, "the demo plan programs the gateway first"
    run_control = RunControl()
    events: list[Progress] = []
    readings_while_paused = asyncio.Event()

    def progress(event: Progress) -> None:
        events.append(event)
        if event.kind is Kind.ECU and event.ecu == plan.gateway and event.status == "Success":
            run_control.pause("ada")
        paused_at = [i for i, e in enumerate(events) if e.status == "paused"]
        if paused_at and sum(1 for e in events[paused_at[0] :] if e.kind is Kind.POWER) >= 20:
            readings_while_paused.set()

    async def resume_later() -> None:
        await readings_while_paused.wait()  # 20 battery readings, and nothing else started
        run_control.resume("ada")

    async with asyncio.timeout(120):
        helper = asyncio.create_task(resume_later())
        report = await apply_plan(
            url, plan, pdata, tmp_path, options=_options(run_control), progress=progress
        )
        await helper

    assert report.outcome == "done"
    statuses = [(e.kind, e.status, e.ecu) for e in events]
    start = next(i for i, e in enumerate(events) if e.status == "paused")
    end = next(i for i, e in enumerate(events) if e.status == "resumed")
    held = [s for s in statuses[start:end] if s[0] in (Kind.ECU, Kind.ACTION, Kind.BYTES)]
    assert held == [], "an ECU started while paused"
    others = {a for a in plan.ecus if a != plan.gateway}
    started_after = {e.ecu for e in events[end:] if e.kind is Kind.ECU and e.status == "Started"}
    assert started_after == others


async def test_an_abort_during_the_gateway_finishes_its_job_and_resume_completes_the_session(
    start_simulator: StartSimulator, pdata_home: Path, tmp_path: Path
) -> None:
    sim = await start_simulator("f-series")
    url = url_of(sim, "f-series")
    sim.set_battery(volts=None, charger=True)
    pdata = open_pdata(pdata_home)
    plan = (await make_plan(url, pdata)).plan
    run_control = RunControl()

    def progress(event: Progress) -> None:
        # The hardest moment: the gateway's first unit is being written.
        if event.kind is Kind.ACTION and event.status == "Started":
            run_control.abort("ada")

    with pytest.raises(Aborted, match=r"^aborted by ada$"):
        async with asyncio.timeout(120):
            await apply_plan(
                url, plan, pdata, tmp_path, options=_options(run_control), progress=progress
            )

    # The gateway's job ran to its end: no ECU is left in its bootloader, none else began.
    state = await control(sim, "GET", "/state")
    assert [e["name"] for e in state["ecus"] if e["mode"] != "application"] == []
    with Journal.open(tmp_path / JOURNAL_FILE) as journal:
        session = journal.unfinished(plan.vin)
        assert session is not None
        assert (session.state, session.note) == ("failed", "aborted by ada")
        states = journal.states(session.id)
        gateway = [a.key for a in plan.actions_of(plan.gateway)]
        assert gateway
        assert all(states[k].status == Status.SUCCESS for k in gateway)
        others = [a.key for a in plan.actions if a.ecu != plan.gateway]
        assert [k for k in others if k in states] == []

    async with asyncio.timeout(120):
        report = await resume_session(
            url, pdata, tmp_path, options=RunOptions(tester_present_s=0.01, voltage_poll_s=0.01)
        )
    assert report.outcome == "done"
    after = svt_of(await control(sim, "GET", "/state"))
    target = {str(k): sorted(v) for k, v in plan.target_svt.items()}
    assert {k: after[k] for k in target} == target
