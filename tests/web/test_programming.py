"""Programming from the web UI's API: identify, plan, start on a reserved VCI, follow, record."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from tests.conftest import StartSimulator
from tests.execute.test_program_e2e import control, svt_of, url_of
from tests.web.conftest import StartWorkstation

from ecuworks.platform.history import vehicle_records
from ecuworks.platform.interfaces import reservation_owner
from ecuworks.platform.users import Role
from ecuworks.sim.simulator import Simulator

TIME_SCALE = 100.0


def _interface(sim: Simulator) -> tuple[str, str, str]:
    return ("sim", url_of(sim, "f-series"), f"http://127.0.0.1:{sim.ports['control']}")


async def _until_over(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    async with asyncio.timeout(120):
        while True:
            state: dict[str, Any] = (await client.get(f"/api/programming/runs/{run_id}")).json()
            if state["state"] in ("done", "failed", "aborted") and state["history_seq"]:
                return state
            await asyncio.sleep(0.1)  # polling the state with a bounded deadline


async def test_identify_plan_and_program_on_the_reserved_vci(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series", time_scale=TIME_SCALE)
    sim.set_battery(volts=None, charger=True)
    ws = await start_workstation(
        home=pdata_home, interfaces=(_interface(sim),), time_scale=TIME_SCALE
    )
    before = await control(sim, "GET", "/state")
    ada = await ws.login("ada", Role.TECHNICIAN)
    found = await ada.post("/api/programming/identify", json={"interface": "sim"})
    assert found.status_code == 200, found.text
    vin = found.json()["identification"]["vin"]
    answer = await ada.post("/api/programming/plan", json={"interface": "sim"})
    assert answer.status_code == 200, answer.text
    plan_id, plan = answer.json()["id"], answer.json()["plan"]

    refused = await ada.post("/api/programming/runs", json={"plan": plan_id})
    assert refused.status_code == 409
    assert "reserve the interface first on the Interfaces page" in refused.json()["detail"]

    owner = reservation_owner("ada", ws.settings.workstation)
    await control(sim, "POST", "/vci/reservation", {"owner": owner, "lease_s": 600})
    started = await ada.post("/api/programming/runs", json={"plan": plan_id})
    assert started.status_code == 202, started.text
    state = await _until_over(ada, started.json()["id"])

    assert state["state"] == "done", state
    assert state["report"]["final_check"] is True
    assert all(e["value"] == e["max"] for e in state["ecus"])
    after = await control(sim, "GET", "/state")
    target = {k: sorted(v) for k, v in plan["target_svt"].items()}
    assert {k: svt_of(after)[k] for k in target} == target
    assert after["ilevel"]["current"] == plan["target_ilevel"] != before["ilevel"]["current"]
    records = [r for r in vehicle_records(ws.db, vin) if r.kind == "program"]
    assert len(records) == 1
    assert records[0].seq == state["history_seq"]
    assert records[0].outcome == "done"
    assert records[0].svt_before == {k: sorted(v) for k, v in plan["actual_svt"].items()}
    assert records[0].svt_after is not None
    assert {k: records[0].svt_after[k] for k in target} == target


async def test_a_viewer_cannot_identify_plan_or_start(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series", time_scale=TIME_SCALE)
    ws = await start_workstation(home=pdata_home, interfaces=(_interface(sim),))
    before = await control(sim, "GET", "/state")
    vera = await ws.login("vera", Role.VIEWER)
    page = await vera.get("/programming")
    assert page.status_code == 200
    assert "Identify</button>" not in page.text
    for path, body in (
        ("/api/programming/identify", {"interface": "sim"}),
        ("/api/programming/plan", {"interface": "sim"}),
        ("/api/programming/runs", {"plan": "anything"}),
    ):
        answer = await vera.post(path, json=body)
        assert answer.status_code == 403, (path, answer.text)
    form = await vera.post("/programming/plans/anything/start", data={})
    assert form.status_code == 403
    after = await control(sim, "GET", "/state")
    assert after["ecus"] == before["ecus"]


async def test_a_target_that_is_no_ilevel_is_a_bad_request_not_a_vehicle_failure(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    # Found by schemathesis (make fuzz): the target "»" answered 502, as if the car had
    # failed, when the request itself was wrong. The body is the one it sent (extra keys
    # included); the page's form takes the same path.
    sim = await start_simulator("f-series", time_scale=TIME_SCALE)
    ws = await start_workstation(home=pdata_home, interfaces=(_interface(sim),))
    before = await control(sim, "GET", "/state")
    ada = await ws.login("ada", Role.TECHNICIAN)
    body = (
        '{"\\u00c6\\u00dc]\\ud839\\udc4af": [false], "\\u00b1": {"\\u00fdn\\u0086": null}, '
        '"interface": "sim", "target": "\\u00bb"}'
    )
    answer = await ada.post(
        "/api/programming/plan", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    assert "expected SSSS-YY-MM-NNN" in answer.json()["detail"]
    form = await ada.post("/programming/plan", data={"interface": "sim", "target": "»"})
    assert form.status_code == 400
    assert "expected SSSS-YY-MM-NNN" in form.text
    after = await control(sim, "GET", "/state")
    assert after["ecus"] == before["ecus"]
