"""The retrofit and replacement wizards of the web UI, against the simulated f-series car:
the HTML forms a technician clicks through, the JSON API, and what a viewer may not do."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from tests.conftest import StartSimulator
from tests.execute.test_jobs_e2e import assert_replaced, coded_values, ecu_of, fsc_status
from tests.execute.test_program_e2e import control, svt_of, url_of
from tests.web.conftest import StartWorkstation, Workstation

from ecuworks.backend.fsc import FscIssuer
from ecuworks.pdata.source import open_pdata
from ecuworks.platform.history import vehicle_records
from ecuworks.platform.interfaces import reservation_owner
from ecuworks.platform.users import Role
from ecuworks.sim.simulator import Simulator
from ecuworks.wire.vo import VehicleOrder

TIME_SCALE = 100.0
HU = 0x63


async def _setup(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, pdata_home: Path
) -> tuple[Simulator, Workstation]:
    sim = await start_simulator("f-series", time_scale=TIME_SCALE)
    sim.set_battery(volts=None, charger=True)
    issuer = FscIssuer.demo()
    ws = await start_workstation(
        home=pdata_home,
        interfaces=(("sim", url_of(sim, "f-series"), f"http://127.0.0.1:{sim.ports['control']}"),),
        time_scale=TIME_SCALE,
        fsc_source=issuer.source(),
        issuer_key=issuer.public_key_bytes,
        hardware_wait_s=60,
    )
    return sim, ws


async def _reserve(sim: Simulator, ws: Workstation, user: str) -> None:
    owner = reservation_owner(user, ws.settings.workstation)
    await control(sim, "POST", "/vci/reservation", {"owner": owner, "lease_s": 600})


async def _poll_run(
    client: httpx.AsyncClient, run_id: str, *, until: str = "over"
) -> dict[str, Any]:
    """The run's state once it is over and recorded (or waits for the technician)."""
    async with asyncio.timeout(120):
        while True:
            state: dict[str, Any] = (await client.get(f"/api/programming/runs/{run_id}")).json()
            if until == "waiting" and state["waiting_for_technician"]:
                return state
            if state["state"] in ("done", "failed", "aborted") and state["history_seq"]:
                assert until == "over", f"ended before the technician's step: {state}"
                return state
            await asyncio.sleep(0.1)  # polling the state with a bounded deadline


def _location(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


async def test_a_retrofit_through_the_forms_checks_the_part_then_installs_it(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    sim, ws = await _setup(start_simulator, start_workstation, pdata_home)
    catalog = open_pdata(pdata_home).catalog
    before = await control(sim, "GET", "/state")
    series, vin = before["series"], before["vin"]
    retrofit = catalog.retrofit(series, "$610")
    part = dict(retrofit.install[0])
    address = int(part["address"])
    ada = await ws.login("ada", Role.TECHNICIAN)
    await _reserve(sim, ws, "ada")

    assert "Identify</button>" in (await ada.get("/retrofit")).text
    offers = _location(await ada.post("/retrofit/identify", data={"interface": "sim"}))
    page = await ada.get(offers)
    assert page.status_code == 200
    assert "$610" in page.text
    assert retrofit.name in page.text
    assert "Retrofit $610</button>" in page.text
    steps = _location(await ada.post(f"{offers}/choose", data={"option": "$610"}))
    assert steps == f"{offers}/{quote('$610', safe='')}"
    page = await ada.get(steps)
    assert f"Install the {part['name']} for {retrofit.name} (address 0x{address:02X}" in page.text

    early = await ada.post(f"{steps}/check", data={})
    assert early.status_code == 409
    assert f"The {part['name']} does not answer at 0x{address:02X}" in early.text
    assert "connector" in early.text
    assert address not in {e["address"] for e in (await control(sim, "GET", "/state"))["ecus"]}

    await control(sim, "POST", "/ecus", part)  # the technician installs the part
    installed = svt_of(await control(sim, "GET", "/state"))
    plan_page = _location(await ada.post(f"{steps}/check", data={}))
    assert plan_page.startswith("/programming/plans/")
    assert "Start the retrofit</button>" in (await ada.get(plan_page)).text
    run_page = _location(await ada.post(f"{plan_page}/start", data={}))
    state = await _poll_run(ada, run_page.rsplit("/", 1)[1])

    assert state["state"] == "done", state
    after = await control(sim, "GET", "/state")
    new_vo = VehicleOrder.parse(after["vo"]["text"])
    assert new_vo.has("$610")
    assert new_vo == VehicleOrder.parse(before["vo"]["text"]).with_option("$610")
    new = ecu_of(after, address)
    assert new["mode"] == "application"
    target = catalog.target_svk(
        series, after["ilevel"]["current"], part["variant"], part["hardware"], new_vo
    )
    assert sorted(new["svk"]) == sorted(str(u) for u in target)
    wanted = catalog.coding_values(series, address, new_vo)
    assert coded_values(catalog, series, new, wanted) == wanted
    assert fsc_status(after, address)[0x00B0] == "accepted"
    records = [r for r in vehicle_records(ws.db, vin) if r.kind == "retrofit"]
    assert len(records) == 1
    assert records[0].outcome == "done"
    assert records[0].svt_before is not None
    assert {k: sorted(v) for k, v in records[0].svt_before.items()} == installed
    assert records[0].svt_after is not None
    assert sorted(records[0].svt_after[str(address)]) == sorted(str(u) for u in target)

    offers = _location(await ada.post("/retrofit/identify", data={"interface": "sim"}))
    assert "done: the vehicle order has it" in (await ada.get(offers)).text
    again = await ada.post(f"{offers}/choose", data={"option": "$610"})
    assert again.status_code == 400
    assert "the vehicle order has $610 already" in again.text


async def test_a_replacement_through_the_api_waits_for_the_swap_and_restores_the_data(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    sim, ws = await _setup(start_simulator, start_workstation, pdata_home)
    before = await control(sim, "GET", "/state")
    old = ecu_of(before, HU)
    assert old["individual_data"]
    assert set(fsc_status(before, HU).values()) == {"accepted"}
    ada = await ws.login("ada", Role.TECHNICIAN)
    await _reserve(sim, ws, "ada")

    answer = await ada.post("/api/replacement/plan", json={"interface": "sim", "ecu": "HU"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["plan"]["job"] == "replace"
    started = await ada.post("/api/programming/runs", json={"plan": answer.json()["id"]})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    waiting = (await _poll_run(ada, run_id, until="waiting"))["waiting_for_technician"]
    assert "HU (0x63)" in waiting

    page = await ada.get(f"/programming/runs/{run_id}")
    assert re.search(r'id="technician-step"><strong>Your step:</strong> ([^<]+)', page.text)
    assert waiting in page.text
    assert "technician-step" in await _first_status_event(ada, run_id)

    await control(sim, "POST", "/ecus/0x63/replace", None)  # the technician swaps the part
    state = await _poll_run(ada, run_id)

    assert state["state"] == "done", state
    assert state["waiting_for_technician"] is None
    after = await control(sim, "GET", "/state")
    assert_replaced(before, old, after)
    records = [r for r in vehicle_records(ws.db, before["vin"]) if r.kind == "replace"]
    assert [r.outcome for r in records] == ["done"]


async def _first_status_event(client: httpx.AsyncClient, run_id: str) -> str:
    """The data of the first ``status`` server-sent event of a run."""
    data: list[str] = []
    url = f"/programming/runs/{run_id}/events"
    async with asyncio.timeout(30), client.stream("GET", url) as events:
        assert events.status_code == 200
        async for line in events.aiter_lines():
            if line.startswith("data: "):
                data.append(line.removeprefix("data: "))
            elif not line and data:
                return "\n".join(data)
    raise AssertionError("the event stream ended without a status event")


async def test_a_viewer_sees_the_wizards_but_cannot_act(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    sim, ws = await _setup(start_simulator, start_workstation, pdata_home)
    ada = await ws.login("ada", Role.TECHNICIAN)
    vera = await ws.login("vera", Role.VIEWER)
    offers = _location(await ada.post("/retrofit/identify", data={"interface": "sim"}))
    ecus = _location(await ada.post("/replacement/identify", data={"interface": "sim"}))
    steps = f"{offers}/{quote('$610', safe='')}"
    before = await control(sim, "GET", "/state")

    for path, why in (
        ("/retrofit", "need a technician"),
        ("/replacement", "need a technician"),
        (offers, "needs a technician"),
        (steps, "need a technician"),
        (ecus, "needs a technician"),
    ):
        page = await vera.get(path)
        assert page.status_code == 200, (path, page.text)
        assert why in page.text, path
        assert not re.search(r'action="/(retrofit|replacement)', page.text), path
    assert "Head-up display" in (await vera.get(offers)).text
    assert "HU" in (await vera.get(ecus)).text

    for path, form in (
        ("/retrofit/identify", {"interface": "sim"}),
        (f"{offers}/choose", {"option": "$610"}),
        (f"{steps}/check", {}),
        ("/replacement/identify", {"interface": "sim"}),
        (f"{ecus}/plan", {"ecu": "0x63"}),
    ):
        answer = await vera.post(path, data=form)
        assert answer.status_code == 403, (path, answer.text)
    for path, body in (
        ("/api/retrofit/check", {"interface": "sim", "option": "$610"}),
        ("/api/replacement/plan", {"interface": "sim", "ecu": "HU"}),
    ):
        answer = await vera.post(path, json=body)
        assert answer.status_code == 403, (path, answer.text)
    assert (await control(sim, "GET", "/state"))["ecus"] == before["ecus"]


async def test_what_cannot_be_planned_is_refused_saying_why(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    sim, ws = await _setup(start_simulator, start_workstation, pdata_home)
    ada = await ws.login("ada", Role.TECHNICIAN)

    unknown = await ada.post("/api/retrofit/check", json={"interface": "sim", "option": "$999"})
    assert unknown.status_code == 400
    assert "no retrofit for $999 (offered: $610)" in unknown.json()["detail"]
    missing = await ada.post("/api/retrofit/check", json={"interface": "sim", "option": "610"})
    assert missing.status_code == 409
    assert [p["name"] for p in missing.json()["missing"]] == ["HUD"]
    nothing = await ada.post("/api/replacement/plan", json={"interface": "sim", "ecu": "XYZ"})
    assert nothing.status_code == 400
    assert "has no ECU XYZ" in nothing.json()["detail"]

    await sim.stop()  # the vehicle is gone
    gone = await ada.post("/api/replacement/plan", json={"interface": "sim", "ecu": "HU"})
    assert gone.status_code == 502
    assert "Nothing was written" in gone.json()["detail"]
    page = await ada.post("/replacement/identify", data={"interface": "sim"})
    assert page.status_code == 502
    assert "Is the vehicle interface connected?" in page.text
