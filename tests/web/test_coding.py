"""Coding from the web UI: VO coding by the API, expert coding through the HTML forms, a
viewer refused, and wrong names answered with the choices before anything is written.

A simulated F-series car answers on loopback; what counts is its own ``/state`` decoded
with the P-Data's coding layout, and the workstation's vehicle history.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
from tests.conftest import StartSimulator
from tests.execute.test_coding_e2e import (
    HU,
    PARAM,
    coded_values,
    records_of,
    upset_coding,
    vo_values,
)
from tests.execute.test_program_e2e import control, url_of
from tests.web.conftest import StartWorkstation, Workstation, csrf_of

from ecuworks.coding.expert import decode_value, parameter_values, vo_value
from ecuworks.pdata.source import open_pdata
from ecuworks.platform.history import vehicle_records
from ecuworks.platform.interfaces import reservation_owner
from ecuworks.platform.users import Role, audit_entries
from ecuworks.sim.simulator import Simulator
from ecuworks.wire.vo import VehicleOrder

TIME_SCALE = 100.0


async def _workstation(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, home: Path
) -> tuple[Simulator, Workstation]:
    sim = await start_simulator("f-series", time_scale=TIME_SCALE)
    sim.set_battery(volts=None, charger=True)
    admin = f"http://127.0.0.1:{sim.ports['control']}"
    ws = await start_workstation(
        home=home, interfaces=(("sim", url_of(sim, "f-series"), admin),), time_scale=TIME_SCALE
    )
    return sim, ws


async def _reserve(sim: Simulator, ws: Workstation, user: str) -> None:
    owner = reservation_owner(user, ws.settings.workstation)
    await control(sim, "POST", "/vci/reservation", {"owner": owner, "lease_s": 600})


async def _until_over(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    async with asyncio.timeout(120):
        while True:
            state: dict[str, Any] = (await client.get(f"/api/programming/runs/{run_id}")).json()
            if state["state"] in ("done", "failed", "aborted") and state["history_seq"]:
                return state
            await asyncio.sleep(0.1)  # polling the state with a bounded deadline


def _codings(state: dict[str, Any]) -> list[dict[str, str]]:
    return [e["coding"] for e in state["ecus"]]


async def test_vo_coding_by_the_api_codes_every_ecu_as_the_vehicle_order_says(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    sim, ws = await _workstation(start_simulator, start_workstation, pdata_home)
    catalog = open_pdata(pdata_home).catalog
    await upset_coding(url_of(sim, "f-series"), await control(sim, "GET", "/state"))
    upset = await control(sim, "GET", "/state")
    wanted = vo_values(catalog, upset)
    assert coded_values(catalog, upset) != wanted
    ada = await ws.login("ada", Role.TECHNICIAN)

    answer = await ada.post("/api/coding/vo", json={"interface": "sim"})
    assert answer.status_code == 200, answer.text
    plan_id, plan = answer.json()["id"], answer.json()["plan"]
    assert plan["job"] == "code"
    assert answer.json()["warning"] is None
    assert {a["ecu"] for a in plan["actions"]} == set(wanted)
    page = await ada.get(f"/programming/plans/{plan_id}")
    assert "Start coding</button>" in page.text

    await _reserve(sim, ws, "ada")
    started = await ada.post("/api/programming/runs", json={"plan": plan_id})
    assert started.status_code == 202, started.text
    state = await _until_over(ada, started.json()["id"])

    assert state["state"] == "done", state
    after = await control(sim, "GET", "/state")
    assert coded_values(catalog, after) == wanted
    records = [r for r in vehicle_records(ws.db, plan["vin"]) if r.kind == "code"]
    assert [(r.seq, r.outcome) for r in records] == [(state["history_seq"], "done")]


async def test_expert_coding_through_the_forms_warns_and_needs_the_confirmation(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    sim, ws = await _workstation(start_simulator, start_workstation, pdata_home)
    catalog = open_pdata(pdata_home).catalog
    before = await control(sim, "GET", "/state")
    layout = catalog.ecu(before["series"], HU).coding
    given = vo_value(catalog, before["series"], HU, VehicleOrder.parse(before["vo"]["text"]), PARAM)
    assert given is not None
    other = next(v for v in parameter_values(layout, PARAM) if v != given)
    ada = await ws.login("ada", Role.TECHNICIAN)
    del ada.headers["x-csrf-token"]  # as a browser without JavaScript: the forms' csrf field
    csrf = csrf_of((await ada.get("/coding")).text)

    read = await ada.post(
        "/coding/read", data={"csrf": csrf, "interface": "sim", "ecu": "hu", "parameter": PARAM}
    )
    assert read.status_code == 200, read.text
    assert re.search(rf'id="value-now">{given}<', read.text)
    assert ", ".join(parameter_values(layout, PARAM)) in read.text
    assert "Matches the vehicle order" in read.text
    assert f'<option value="{other}">' in read.text

    made = await ada.post(
        "/coding/expert",
        data={"csrf": csrf, "interface": "sim", "ecu": "HU", "parameter": PARAM, "value": other},
    )
    assert made.status_code == 303, made.text
    plan_path = made.headers["location"]
    plan_page = await ada.get(plan_path)
    warning = f"{PARAM} = {other} contradicts the vehicle order, which gives {given}"
    assert warning in plan_page.text
    assert 'name="confirm_warning"' in plan_page.text
    assert "Code this parameter</button>" in plan_page.text

    await _reserve(sim, ws, "ada")
    refused = await ada.post(f"{plan_path}/start", data={"csrf": csrf})
    assert refused.status_code == 409
    assert "Confirm the warning" in refused.text
    assert _codings(await control(sim, "GET", "/state")) == _codings(before)

    started = await ada.post(f"{plan_path}/start", data={"csrf": csrf, "confirm_warning": "yes"})
    assert started.status_code == 303, started.text
    run_id = started.headers["location"].rsplit("/", 1)[-1]
    state = await _until_over(ada, run_id)
    assert state["state"] == "done", state

    after = await control(sim, "GET", "/state")
    hu = records_of(next(e for e in after["ecus"] if e["address"] == HU))
    assert decode_value(layout, hu, PARAM) == other
    body = {"interface": "sim", "ecu": "0x63", "parameter": PARAM}
    reading = await ada.post("/api/coding/read", json=body, headers={"x-csrf-token": csrf})
    assert reading.status_code == 200, reading.text
    assert reading.json()["value"] == other
    assert reading.json()["vo_value"] == given
    assert reading.json()["contradicts_vo"] is True
    again = await ada.post("/coding/read", data={"csrf": csrf, **body})
    assert "Differs from the vehicle order" in again.text

    records = [r for r in vehicle_records(ws.db, before["vin"]) if r.kind == "expert-coding"]
    assert [(r.seq, r.outcome) for r in records] == [(state["history_seq"], "done")]
    (start,) = audit_entries(ws.db, user="ada", actions=("expert-coding-start",))
    assert start.vin == before["vin"]
    assert warning in start.detail


async def test_a_viewer_cannot_read_or_change_coding(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    sim, ws = await _workstation(start_simulator, start_workstation, pdata_home)
    before = await control(sim, "GET", "/state")
    vera = await ws.login("vera", Role.VIEWER)
    page = await vera.get("/coding")
    assert page.status_code == 200
    assert "a viewer cannot read or change coding" in " ".join(page.text.split())
    assert 'action="/coding' not in page.text
    assert "Make coding plan" not in page.text
    assert "Read parameter" not in page.text

    read = {"interface": "sim", "ecu": "HU", "parameter": PARAM}
    for path, body in (
        ("/coding/vo", {"interface": "sim"}),
        ("/coding/read", read),
        ("/coding/expert", {**read, "value": "v1"}),
    ):
        assert (await vera.post(path, data=body)).status_code == 403, path
        assert (await vera.post(f"/api{path}", json=body)).status_code == 403, path

    # A plan a technician made, on an interface the viewer even holds, stays unstarted.
    ada = await ws.login("ada", Role.TECHNICIAN)
    plan_id = (await ada.post("/api/coding/vo", json={"interface": "sim"})).json()["id"]
    await _reserve(sim, ws, "vera")
    start = await vera.post(f"/programming/plans/{plan_id}/start", data={})
    assert start.status_code == 403
    start = await vera.post("/api/programming/runs", json={"plan": plan_id})
    assert start.status_code == 403
    assert _codings(await control(sim, "GET", "/state")) == _codings(before)


async def test_a_wrong_ecu_parameter_or_value_is_refused_with_the_choices(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    sim, ws = await _workstation(start_simulator, start_workstation, pdata_home)
    catalog = open_pdata(pdata_home).catalog
    before = await control(sim, "GET", "/state")
    values = ", ".join(parameter_values(catalog.ecu(before["series"], HU).coding, PARAM))
    ada = await ws.login("ada", Role.TECHNICIAN)
    await _reserve(sim, ws, "ada")
    hu = {"interface": "sim", "ecu": "HU"}

    for path, body, choices in (
        ("/coding/vo", {"interface": "sim", "ecus": ["HU", "NAVI"]}, "HU (0x63)"),
        ("/coding/read", {**hu, "parameter": "speed"}, "feature_3000, variant_3000"),
        ("/coding/expert", {**hu, "parameter": PARAM, "value": "v9"}, values),
        ("/coding/expert", {**hu, "ecu": "NAVI", "parameter": PARAM, "value": "v1"}, "DME (0x12)"),
    ):
        answer = await ada.post(f"/api{path}", json=body)
        assert answer.status_code == 400, (path, answer.text)
        assert choices in answer.json()["detail"], answer.text
        assert "Nothing was written" in answer.json()["detail"]
        form = {k: v if isinstance(v, str) else " ".join(v) for k, v in body.items()}
        page = await ada.post(path, data=form)
        assert page.status_code == 400, (path, page.text)
        assert choices in " ".join(page.text.split())

    assert _codings(await control(sim, "GET", "/state")) == _codings(before)
    assert [r.kind for r in vehicle_records(ws.db, before["vin"])] == []
