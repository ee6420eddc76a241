"""The vehicle history pages: search, a vehicle's records, one record with its SVT change
and its journal steps; readable by a viewer, closed to anyone not logged in."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import httpx
from tests.conftest import StartSimulator
from tests.execute.test_program_e2e import FAST, control, url_of
from tests.test_cli import run_cli
from tests.web.conftest import StartWorkstation

from ecuworks.execute.journal import Journal, Status
from ecuworks.execute.session import JOURNAL_FILE
from ecuworks.platform import history
from ecuworks.platform.users import Role

VIN = "WBA3B1C50FK000042"
OLD, NEW = "SWFL_0000_0A11_001_002_003", "SWFL_0000_0A11_002_000_000"
KEPT = "HWEL_0000_0B22_001_000_000"


def _cells(page: str) -> list[str]:
    """The text of the page's table cells and row headers, tags stripped."""
    found = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", page, flags=re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", cell)).split()) for cell in found]


def _session_in_journal(home: Path) -> int:
    with Journal.open(home / JOURNAL_FILE) as journal:
        session = journal.start_session(
            vin=VIN, fingerprint="f" * 64, target_ilevel="F020-24-03-500", plan_json="{}"
        )
        key = f"0x12/SwDeploy/{NEW}"
        journal.record(session.id, key, Status.STARTED, ecu=0x12)
        journal.record(session.id, key, Status.SUCCESS, ecu=0x12)
        journal.set_state(session.id, "finished")
    return session.id


async def test_a_viewer_finds_a_vehicle_and_reads_its_session(
    start_workstation: StartWorkstation,
) -> None:
    ws = await start_workstation()
    session = _session_in_journal(ws.settings.home)
    history.append(
        ws.db,
        history.Entry(
            vin=VIN,
            kind="identify",
            user="ada",
            workstation="bench-1",
            outcome="read",
            summary="identified at I-level F020-23-11-520",
            svt_before={"18": [OLD], "64": [KEPT]},
        ),
    )
    history.append(
        ws.db,
        history.Entry(
            vin=VIN,
            kind="program",
            user="ada",
            workstation="bench-1",
            outcome="done",
            summary="program to F020-24-03-500 done in 3.2 min",
            svt_before={"18": [OLD], "64": [KEPT]},
            svt_after={"18": [NEW], "64": [KEPT]},
            journal_session=session,
            data={"ecus": [{"ecu": 18, "name": "DME"}], "outcome": "done"},
        ),
    )
    history.append(
        ws.db,
        history.Entry(
            vin="WBA00000000000007",
            kind="dtc-read",
            user="grace",
            workstation="bench-2",
            outcome="read",
            summary="fault memory read: 0 entries in 3 ECU(s)",
        ),
    )
    viewer = await ws.login("vic", Role.VIEWER)
    page = await viewer.get("/history", params={"q": "ada"})
    assert page.status_code == 200
    assert VIN in page.text
    assert "WBA00000000000007" not in page.text
    assert _cells(page.text)[4:6] == [VIN, "2"]
    assert "WBA00000000000007" in (await viewer.get("/history", params={"q": "grace"})).text
    assert "No vehicle matches" in (await viewer.get("/history?q=nobody")).text

    page = await viewer.get(f"/history/{VIN}")
    assert page.status_code == 200
    assert "Chain verified, 2 record(s)" in page.text
    cells = _cells(page.text)
    kinds = [cells[i + 2] for i, c in enumerate(cells) if c in {"1", "2"}]
    assert kinds == ["program", "identify"], "newest first"
    assert "bench-1" in cells
    assert "done" in cells

    page = await viewer.get(f"/history/{VIN}/2")
    assert page.status_code == 200
    cells = _cells(page.text)
    dme = cells.index("0x12 DME")
    assert cells[dme + 1 : dme + 4] == [OLD, NEW, "changed"]
    other = cells.index("0x40")
    assert cells[other + 1 : other + 4] == [KEPT, KEPT, "unchanged"]
    assert f"Steps of journal session {session}" in page.text
    assert f"0x12/SwDeploy/{NEW}" in cells
    assert "Success" in cells

    record = (await viewer.get(f"/api/history/{VIN}/2")).json()
    assert record["svt_after"] == {"18": [NEW], "64": [KEPT]}
    assert [s["status"] for s in record["journal"]["steps"]] == ["Started", "Success"]
    vehicle = (await viewer.get(f"/api/history/{VIN}")).json()
    assert vehicle["chain"] == {"verified": True, "records": 2, "break": None}
    found = (await viewer.get("/api/history", params={"q": VIN[:8]})).json()
    assert [v["vin"] for v in found["vehicles"]] == [VIN]

    assert (await viewer.get("/history/WBA99999999999999")).status_code == 404
    assert (await viewer.get(f"/api/history/{VIN}/9")).status_code == 404


async def test_a_session_whose_journal_is_elsewhere_says_so(
    start_workstation: StartWorkstation,
) -> None:
    ws = await start_workstation()
    history.append(
        ws.db,
        history.Entry(
            vin=VIN,
            kind="code",
            user="ada",
            workstation="bench-9",
            outcome="done",
            summary="code done",
            journal_session=4,
        ),
    )
    client = await ws.login("ada", Role.TECHNICIAN)
    page = await client.get(f"/history/{VIN}/1")
    assert "the journal of this session is not on this workstation" in page.text


async def test_history_needs_a_login(start_workstation: StartWorkstation) -> None:
    ws = await start_workstation()
    history.append(
        ws.db,
        history.Entry(
            vin=VIN, kind="identify", user="ada", workstation="b", outcome="read", summary="x"
        ),
    )
    async with httpx.AsyncClient(base_url=ws.url, headers={"accept": "text/html"}) as anonymous:
        for path in ("/history", f"/history/{VIN}", f"/history/{VIN}/1"):
            answer = await anonymous.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/login")
        for path in ("/api/history", f"/api/history/{VIN}", f"/api/history/{VIN}/1"):
            assert (await anonymous.get(path)).status_code == 401


async def test_a_cli_session_shows_its_svt_change_and_steps(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series")
    url = url_of(sim, "f-series")
    await control(sim, "POST", "/battery", {"charger": True})
    ws = await start_workstation(home=pdata_home)
    code, out, err = await run_cli(
        "--home",
        str(pdata_home),
        "--db",
        ws.settings.db_url,
        "program",
        "--vci",
        url,
        "--yes",
        "--json",
        *FAST,
    )
    assert code == 0, err
    report = json.loads(out)
    viewer = await ws.login("vic", Role.VIEWER)
    page = await viewer.get(f"/history/{report['vin']}/1")
    assert page.status_code == 200
    cells = _cells(page.text)
    assert cells.count("changed") == sum(1 for e in report["ecus"] if e["actions"])
    assert f"Steps of journal session {report['session']}" in page.text
    assert "step/final-check" in cells
