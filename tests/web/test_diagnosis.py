"""Diagnosis in the web UI: the fault memory read with descriptions, cleared on confirmation.

Faults are stored in the simulated car's ECUs through its control API (as
tests/vehicle/test_dtc.py does); what counts is the simulator's own ``/state``.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from tests.conftest import StartSimulator
from tests.execute.test_program_e2e import control, url_of
from tests.execute.test_reservation import admin_url
from tests.vehicle.test_dtc import INJECTED, TEXTS, inject, stored
from tests.web.conftest import StartWorkstation, Workstation, csrf_of

from ecuworks.platform.history import vehicle_records
from ecuworks.platform.users import Role
from ecuworks.sim.simulator import Simulator
from ecuworks.vehicle.dtc import NO_DESCRIPTION

TIME_SCALE = 100.0
READ = "/diagnosis?interface=sim"


async def _bench(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, home: Path
) -> tuple[Simulator, Workstation]:
    sim = await start_simulator("f-series", time_scale=TIME_SCALE)
    sim.set_battery(volts=None, charger=True)
    await inject(sim)
    ws = await start_workstation(
        home=home,
        interfaces=(("sim", url_of(sim, "f-series"), admin_url(sim)),),
        time_scale=TIME_SCALE,
        workstation="bay-2",
    )
    return sim, ws


def _rows(page: str) -> set[tuple[str, str, str]]:
    """(ECU, code, description) of every row of the fault memory table."""
    cells = re.findall(
        r"<tr><td>([^<]*)</td><td>(0x[0-9A-F]{6})</td><td>[^<]*</td><td>([^<]*)</td></tr>", page
    )
    return {(html.unescape(e), c, html.unescape(t)) for e, c, t in cells}


async def test_faults_are_shown_with_descriptions_and_cleared_on_the_reservation(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    sim, ws = await _bench(start_simulator, start_workstation, pdata_home)
    vin = (await control(sim, "GET", "/state"))["vin"]
    ada = await ws.login("ada", Role.TECHNICIAN)

    page = await ada.get(READ)
    assert page.status_code == 200, page.text
    rows = _rows(page.text)
    assert {
        ("DSC (0x29)", "0x5E2012", TEXTS[0x5E2012]),
        ("KOMBI (0x60)", "0x801C20", TEXTS[0x801C20]),
        ("ACSM (0x01)", "0x930B23", TEXTS[0x930B23]),
        ("ACSM (0x01)", "0x123456", NO_DESCRIPTION),
    } <= rows
    assert len(rows) == sum(len(codes) for codes in (await stored(sim)).values())
    assert [r.kind for r in vehicle_records(ws.db, vin)] == ["dtc-read"]

    # The first press only asks: what will be cleared, and a button to confirm.
    asked = await ada.post(
        "/diagnosis/clear", data={"csrf": csrf_of(page.text), "interface": "sim"}
    )
    assert asked.status_code == 200
    assert "Yes, clear the fault memory" in asked.text
    assert f"{len(rows)} entries" in asked.text
    confirm = {"csrf": csrf_of(asked.text), "interface": "sim", "confirm": "yes"}

    refused = await ada.post("/diagnosis/clear", data=confirm)
    assert refused.status_code == 409
    assert "reserve the interface first on the Interfaces page" in refused.text
    assert [(await stored(sim))[a] for a in INJECTED] != [[], [], []]

    listed = await ada.get("/interfaces")
    reserve = re.search(r'action="(/interfaces/\d+/reserve)"', listed.text)
    assert reserve
    assert (await ada.post(reserve.group(1), data={"csrf": csrf_of(listed.text)})).is_redirect

    cleared = await ada.post("/diagnosis/clear", data=confirm)
    assert cleared.status_code == 200, cleared.text
    assert "Fault memory cleared. Read again now:" in cleared.text
    assert "0 entries in" in cleared.text
    assert _rows(cleared.text) == set()
    assert set(map(len, (await stored(sim)).values())) == {0}
    kinds = [(r.kind, r.outcome) for r in vehicle_records(ws.db, vin)]
    assert ("diag", "done") in kinds
    assert _rows((await ada.get(READ)).text) == set()


async def test_a_viewer_reads_but_cannot_clear(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    sim, ws = await _bench(start_simulator, start_workstation, pdata_home)
    before = await stored(sim)
    vera = await ws.login("vera", Role.VIEWER)
    page = await vera.get(READ)
    assert page.status_code == 200
    assert ("DSC (0x29)", "0x5E2012", TEXTS[0x5E2012]) in _rows(page.text)
    assert "Clear fault memory" not in page.text
    for form in ({"interface": "sim"}, {"interface": "sim", "confirm": "yes"}):
        assert (await vera.post("/diagnosis/clear", data=form)).status_code == 403
    assert await stored(sim) == before
