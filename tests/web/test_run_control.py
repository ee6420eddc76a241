"""Pause, resume and abort a programming session with the status page's forms.

The technician reserves the VCI on the Interfaces page, makes the plan, presses "Start"
and then the buttons of the status page: plain HTML forms carrying the ``csrf`` field,
answered 303 back to the page. The simulator runs slowly enough (the gateway's job, which
runs alone before every other ECU, takes about half a second) for a button to land while
the gateway is being programmed: everything else is still waiting then, which makes what
a pause or an abort holds back exact.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, async_playwright, expect
from tests.conftest import StartSimulator
from tests.execute.test_program_e2e import FAST, control, svt_of, url_of
from tests.execute.test_reservation import admin_url
from tests.test_cli import run_cli
from tests.web.conftest import PASSWORD, StartWorkstation, Workstation, csrf_of
from tests.web.test_browser import ARGS, CHROMIUM

from ecuworks.platform.history import vehicle_records
from ecuworks.platform.interfaces import reservation_owner
from ecuworks.platform.users import Role
from ecuworks.sim.simulator import Simulator

TIME_SCALE = 5.0
WORKSTATION = "bay-7"
State = dict[str, Any]


@dataclass
class Bench:
    """A simulated car on a workstation, a session started on it from the plan page."""

    sim: Simulator
    ws: Workstation
    ada: httpx.AsyncClient
    plan: dict[str, Any]
    run: str
    before: State

    @property
    def page(self) -> str:
        return f"/programming/runs/{self.run}"

    @property
    def others(self) -> set[int]:
        """Every ECU the plan touches after the gateway."""
        return {a["ecu"] for a in self.plan["actions"]} - {self.plan["gateway"]}


async def _form(client: httpx.AsyncClient, page: str, action: str) -> httpx.Response:
    """Submit the form ``action`` found on ``page`` with its hidden fields, as a browser."""
    html = (await client.get(page)).text
    assert f'action="{action}"' in html, f"no form to {action} on {page}"
    return await client.post(action, data={"csrf": csrf_of(html)})


async def _state(client: httpx.AsyncClient, run: str) -> State:
    answer = await client.get(f"/api/programming/runs/{run}")
    assert answer.status_code == 200, answer.text
    state: State = answer.json()
    return state


async def _until(
    client: httpx.AsyncClient, run: str, what: str, check: Callable[[State], bool]
) -> State:
    """Poll the run's state (bounded) until ``check`` holds; fail saying ``what`` did not."""
    state: State = {}
    try:
        async with asyncio.timeout(60):
            while True:
                state = await _state(client, run)
                if check(state):
                    return state
                await asyncio.sleep(0.01)  # polling the state with a bounded deadline
    except TimeoutError:
        pytest.fail(f"{what} did not happen within 60 s; last state: {state}")


def _ecu(state: State, address: int) -> State:
    found: State = next(e for e in state["ecus"] if e["ecu"] == address)
    return found


def _gateway_running(bench: Bench) -> Callable[[State], bool]:
    return lambda state: _ecu(state, bench.plan["gateway"])["status"] == "running"


def _recorded(state: State) -> bool:
    return state["state"] in ("done", "failed", "aborted") and state["history_seq"] is not None


def _controls(html: str) -> list[str]:
    return re.findall(r'action="/programming/runs/[^/"]+/(\w+)"', html)


async def _start(
    start_simulator: StartSimulator,
    start_workstation: StartWorkstation,
    pdata_home: Path,
    time_scale: float = TIME_SCALE,
) -> Bench:
    sim = await start_simulator("f-series", time_scale=time_scale)
    sim.set_battery(volts=None, charger=True)
    ws = await start_workstation(
        home=pdata_home,
        interfaces=(("sim", url_of(sim, "f-series"), admin_url(sim)),),
        time_scale=time_scale,
        workstation=WORKSTATION,
    )
    before = await control(sim, "GET", "/state")
    ada = await ws.login("ada", Role.TECHNICIAN)
    del ada.headers["x-csrf-token"]  # from here on, only the forms' csrf field
    listed = await ada.get("/interfaces")
    reserve = re.search(r'action="(/interfaces/\d+/reserve)"', listed.text)
    assert reserve
    reserved = await _form(ada, "/interfaces", reserve.group(1))
    assert reserved.status_code == 303, reserved.text
    made = await ada.post(
        "/api/programming/plan",
        json={"interface": "sim"},
        headers={"x-csrf-token": csrf_of(listed.text)},
    )
    assert made.status_code == 200, made.text
    plan_id, plan = made.json()["id"], made.json()["plan"]
    started = await _form(
        ada, f"/programming/plans/{plan_id}", f"/programming/plans/{plan_id}/start"
    )
    assert started.status_code == 303, started.text
    run = started.headers["location"].removeprefix("/programming/runs/")
    return Bench(sim, ws, ada, plan, run, before)


async def test_a_pause_holds_every_ecu_until_resumed_and_the_reservation_stays(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    bench = await _start(start_simulator, start_workstation, pdata_home)
    ada, page = bench.ada, bench.page
    assert _controls((await ada.get(page)).text) == ["pause", "abort"]
    await _until(ada, bench.run, "the gateway's job", _gateway_running(bench))

    paused = await _form(ada, page, f"{page}/pause")
    assert (paused.status_code, paused.headers["location"]) == (303, page)
    shown = (await ada.get(page)).text
    assert "State: <strong>paused</strong> (by ada)" in shown
    assert _controls(shown) == ["resume", "abort"]

    # Paused during the gateway's job: no other ECU began, none will until resumed.
    held = await _state(ada, bench.run)
    assert held["state"] == "paused"
    waiting = {e["ecu"]: (e["status"], e["value"]) for e in held["ecus"]}
    assert {waiting[a] for a in bench.others} == {("waiting", 0)}, "pressed too late"
    during = svt_of(await control(bench.sim, "GET", "/state"))
    assert {str(a): during[str(a)] for a in bench.others} == {
        str(a): svt_of(bench.before)[str(a)] for a in bench.others
    }

    # A viewer watching the page can neither resume nor abort.
    vera = await bench.ws.login("vera", Role.VIEWER)
    assert _controls((await vera.get(page)).text) == []
    for what in ("resume", "abort", "pause"):
        assert (await vera.post(f"{page}/{what}", data={})).status_code == 403
    still = await _state(ada, bench.run)
    assert still["state"] == "paused"
    assert {_ecu(still, a)["value"] for a in bench.others} == {0}

    resumed = await _form(ada, page, f"{page}/resume")
    assert resumed.status_code == 303
    done = await _until(ada, bench.run, "the end of the session", _recorded)
    assert done["state"] == "done", done["error"]
    assert all(_ecu(done, a)["value"] == _ecu(done, a)["max"] > 0 for a in bench.others)
    assert {"paused by ada", "resumed by ada"} <= {n.split(":")[0] for n in done["notes"]}
    over = (await ada.get(page)).text
    assert "State: <strong>done</strong>" in over
    assert _controls(over) == [], "no buttons once the session is over"

    # The session kept the technician's reservation, renewed to a full lease.
    owner = reservation_owner("ada", WORKSTATION)
    vci = await control(bench.sim, "GET", "/vci")
    assert vci["owner"] == owner
    listed = (await ada.get("/interfaces")).text
    assert f"reserved by {owner}, 15 min left" in listed


async def test_an_abort_stops_at_an_ecu_boundary_and_resume_reaches_the_target(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    bench = await _start(start_simulator, start_workstation, pdata_home)
    ada, page = bench.ada, bench.page
    await _until(ada, bench.run, "the gateway's job", _gateway_running(bench))

    aborted = await _form(ada, page, f"{page}/abort")
    assert (aborted.status_code, aborted.headers["location"]) == (303, page)
    state = await _until(ada, bench.run, "the end of the session", _recorded)
    assert state["state"] == "aborted"
    assert {_ecu(state, a)["value"] for a in bench.others} == {0}
    shown = (await ada.get(page)).text
    assert "State: <strong>aborted</strong> (aborted by ada)" in shown
    assert _controls(shown) == []

    # The gateway's job ran to its end; nothing else was touched, nothing is in a bootloader.
    after = await control(bench.sim, "GET", "/state")
    assert [e["name"] for e in after["ecus"] if e["mode"] != "application"] == []
    gateway = str(bench.plan["gateway"])
    assert svt_of(after)[gateway] == sorted(bench.plan["target_svt"][gateway])
    assert {str(a): svt_of(after)[str(a)] for a in bench.others} == {
        str(a): svt_of(bench.before)[str(a)] for a in bench.others
    }
    records = [r for r in vehicle_records(bench.ws.db, bench.plan["vin"]) if r.kind == "program"]
    assert [(r.seq, r.outcome) for r in records] == [(state["history_seq"], "failed")]
    assert "aborted by ada" in records[0].summary

    # At the workbench's terminal, on the same reservation, the session goes on to its end.
    code, _, err = await run_cli(
        "--home",
        str(pdata_home),
        "resume",
        "--vci",
        url_of(bench.sim, "f-series"),
        "--vci-admin",
        admin_url(bench.sim),
        "--owner",
        reservation_owner("ada", WORKSTATION),
        "--yes",
        *FAST,
    )
    assert code == 0, err
    final = await control(bench.sim, "GET", "/state")
    target = {k: sorted(v) for k, v in bench.plan["target_svt"].items()}
    assert {k: svt_of(final)[k] for k in target} == target
    assert final["ilevel"]["current"] == bench.plan["target_ilevel"]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert shutil.which(CHROMIUM), "Debian chromium is missing: run 'make test' (it installs it)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        await launched.close()


async def test_the_buttons_leave_a_status_page_left_open_when_the_session_ends(
    browser: Browser,
    start_simulator: StartSimulator,
    start_workstation: StartWorkstation,
    pdata_home: Path,
) -> None:
    bench = await _start(start_simulator, start_workstation, pdata_home, time_scale=20.0)
    await _until(bench.ada, bench.run, "the gateway's job", _gateway_running(bench))
    assert (await _form(bench.ada, bench.page, f"{bench.page}/pause")).status_code == 303
    page = await browser.new_page()
    page.set_default_timeout(30_000)
    await page.goto(f"{bench.ws.url}/login?next={bench.page}")
    await page.get_by_label("User name").fill("ada")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("button", name="Resume")).to_be_visible()
    await expect(page.get_by_role("button", name="Abort")).to_be_visible()

    # Resumed elsewhere: this page, left open, follows the session to its end.
    assert (await _form(bench.ada, bench.page, f"{bench.page}/resume")).status_code == 303
    await expect(page.get_by_text("Outcome: done")).to_be_visible(timeout=120_000)
    for name in ("Pause", "Resume", "Abort"):
        await expect(page.get_by_role("button", name=name)).to_have_count(0)
