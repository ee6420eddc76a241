"""The interface manager in the web UI: status, reservations between workstations,
expiry, discovery, adding and removing, and who may do what."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
from sqlalchemy import select
from tests.conftest import StartSimulator
from tests.execute.test_program_e2e import HOST, control, url_of
from tests.execute.test_reservation import admin_url, free_port
from tests.web.conftest import StartWorkstation, Workstation, csrf_of

from ecuworks.platform.models import AuditEntry
from ecuworks.platform.users import Role
from ecuworks.sim.simulator import Simulator

RESERVE = re.compile(r'<button type="submit" aria-label="Reserve bench">Reserve</button>')


async def bench_workstation(
    start_workstation: StartWorkstation, sim: Simulator, home: Path, name: str
) -> Workstation:
    """A workstation that knows the simulator's VCI as ``bench``."""
    return await start_workstation(
        home=home,
        workstation=name,
        interfaces=(("bench", url_of(sim, "f-series"), admin_url(sim)),),
    )


def audit_of(ws: Workstation) -> list[tuple[str, str, str]]:
    with ws.db.session() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(e.user, e.action, e.detail) for e in entries if e.action.startswith("vci-")]


async def test_two_workstations_reserve_at_once_and_one_is_refused_by_name(
    start_simulator: StartSimulator,
    start_workstation: StartWorkstation,
    tmp_path: Path,
) -> None:
    sim = await start_simulator("f-series")
    ws1 = await bench_workstation(start_workstation, sim, tmp_path / "ws1", "ws1")
    ws2 = await bench_workstation(start_workstation, sim, tmp_path / "ws2", "ws2")
    ada, bob = (
        await ws1.login("ada", Role.TECHNICIAN),
        await ws2.login("bob", Role.TECHNICIAN),
    )
    [(ada_id,)] = [(i["id"],) for i in (await ada.get("/api/interfaces")).json()]
    [(bob_id,)] = [(i["id"],) for i in (await bob.get("/api/interfaces")).json()]

    answers = await asyncio.gather(
        ada.post(f"/api/interfaces/{ada_id}/reserve"),
        bob.post(f"/api/interfaces/{bob_id}/reserve"),
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    won, lost = sorted(answers, key=lambda a: a.status_code)
    winner = won.json()["owner"]
    assert winner in ("ada@ws1", "bob@ws2")
    assert lost.json()["owner"] == winner
    assert f"reserved by {winner}, 15 min left" in lost.json()["detail"]
    assert (await control(sim, "GET", "/vci"))["owner"] == winner

    # The loser's page says who has it; pressing Reserve again is refused with the name.
    loser, loser_id = (bob, bob_id) if winner == "ada@ws1" else (ada, ada_id)
    page = await loser.get("/interfaces")
    assert f"reserved by {winner}" in page.text
    refused = await loser.post(f"/interfaces/{loser_id}/reserve", data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 409
    assert f"reserved by {winner}, 15 min left" in refused.text
    assert 'role="alert"' in refused.text

    all_audit = audit_of(ws1) + audit_of(ws2)
    assert ("ada" if winner == "ada@ws1" else "bob", "vci-reserve", f"bench as {winner}") in (
        all_audit
    )
    assert sum(a[1] == "vci-reserve-refused" for a in all_audit) == 2


async def test_reserve_and_release_from_the_page(
    start_simulator: StartSimulator,
    start_workstation: StartWorkstation,
    tmp_path: Path,
) -> None:
    sim = await start_simulator("f-series")
    ws = await bench_workstation(start_workstation, sim, tmp_path / "ws", "bay-3")
    ada = await ws.login("ada", Role.TECHNICIAN)
    page = await ada.get("/interfaces")
    assert RESERVE.search(page.text)
    assert 'aria-label="Release bench"' in page.text
    reserve = re.search(r'action="(/interfaces/\d+/reserve)"', page.text)
    release = re.search(r'action="(/interfaces/\d+/release)"', page.text)
    assert reserve
    assert release
    csrf = csrf_of(page.text)

    answer = await ada.post(reserve.group(1), data={"csrf": csrf})
    assert (answer.status_code, answer.headers["location"]) == (303, "/interfaces")
    page = await ada.get("/interfaces")
    assert "reserved by ada@bay-3, 15 min left" in page.text

    answer = await ada.post(release.group(1), data={"csrf": csrf})
    assert (answer.status_code, answer.headers["location"]) == (303, "/interfaces")
    assert (await control(sim, "GET", "/vci"))["owner"] is None
    assert [a[1] for a in audit_of(ws)] == ["vci-reserve", "vci-release"]


async def test_an_expired_lease_is_taken_over(
    start_simulator: StartSimulator,
    start_workstation: StartWorkstation,
    tmp_path: Path,
) -> None:
    sim = await start_simulator("f-series")
    ws = await bench_workstation(start_workstation, sim, tmp_path / "ws", "ws1")
    ada = await ws.login("ada", Role.TECHNICIAN)
    [interface] = (await ada.get("/api/interfaces")).json()
    # Another workstation holds it with a short lease and never renews it.
    await control(sim, "POST", "/vci/reservation", {"owner": "bench-2@ws2", "lease_s": 0.5})
    refused = await ada.post(f"/api/interfaces/{interface['id']}/reserve")
    assert (refused.status_code, refused.json()["owner"]) == (409, "bench-2@ws2")

    deadline = time.monotonic() + 10
    answer = refused
    while answer.status_code == 409:
        assert time.monotonic() < deadline, "the expired lease was never taken over"
        await asyncio.sleep(0.05)
        answer = await ada.post(f"/api/interfaces/{interface['id']}/reserve")
    assert (answer.status_code, answer.json()["owner"]) == (200, "ada@ws1")
    assert (await control(sim, "GET", "/vci"))["owner"] == "ada@ws1"


async def test_the_status_shows_owner_firmware_vin_and_battery(
    start_simulator: StartSimulator,
    start_workstation: StartWorkstation,
    tmp_path: Path,
) -> None:
    sim = await start_simulator("f-series")
    ws = await bench_workstation(start_workstation, sim, tmp_path / "ws", "ws1")
    await control(sim, "POST", "/vci/reservation", {"owner": "bench-2@ws2", "lease_s": 700})
    vci = await control(sim, "GET", "/vci")
    viewer = await ws.login("vera", Role.VIEWER)

    page = (await viewer.get("/interfaces")).text
    cell = re.search(r'<td aria-live="polite"[^>]*>([^<]*)</td>', page)
    assert cell
    assert cell.group(1) == "reserved by bench-2@ws2, 12 min left"
    for shown in ("ICOM-NEXT 04.07.1", vci["vin"], f"{vci['battery_volts']:.1f} V"):
        assert shown in page

    [listed] = (await viewer.get("/api/interfaces")).json()
    assert listed["state"] == "reserved"
    assert (listed["owner"], listed["firmware"], listed["vin"]) == (
        "bench-2@ws2",
        "ICOM-NEXT 04.07.1",
        vci["vin"],
    )


async def test_an_interface_that_does_not_answer_is_shown_offline(
    start_workstation: StartWorkstation,
    tmp_path: Path,
) -> None:
    ws = await start_workstation(
        home=tmp_path / "ws",
        interfaces=(("gone", "hsfz://127.0.0.1", f"http://{HOST}:{free_port()}"),),
    )
    ada = await ws.login("ada", Role.TECHNICIAN)
    page = await ada.get("/interfaces")
    assert page.status_code == 200
    assert "offline: the VCI&#39;s management address" in page.text
    [listed] = (await ada.get("/api/interfaces")).json()
    failed = await ada.post(f"/api/interfaces/{listed['id']}/reserve")
    assert failed.status_code == 502
    assert "does not answer" in failed.json()["detail"]


async def test_a_viewer_cannot_reserve(
    start_simulator: StartSimulator,
    start_workstation: StartWorkstation,
    tmp_path: Path,
) -> None:
    sim = await start_simulator("f-series")
    ws = await bench_workstation(start_workstation, sim, tmp_path / "ws", "ws1")
    viewer = await ws.login("vera", Role.VIEWER)
    page = await viewer.get("/interfaces")
    assert "bench" in page.text
    assert not RESERVE.search(page.text)
    assert "Add interface" not in page.text
    [listed] = (await viewer.get("/api/interfaces")).json()

    form = await viewer.post(
        f"/interfaces/{listed['id']}/reserve", data={"csrf": csrf_of(page.text)}
    )
    assert form.status_code == 403
    assert "vera is a viewer" in form.text
    api = await viewer.post(f"/api/interfaces/{listed['id']}/reserve")
    assert api.status_code == 403
    assert (await control(sim, "GET", "/vci"))["owner"] is None
    assert audit_of(ws) == []


async def test_nothing_works_without_a_login(
    start_simulator: StartSimulator, start_workstation: StartWorkstation, tmp_path: Path
) -> None:
    sim = await start_simulator("f-series")
    ws = await bench_workstation(start_workstation, sim, tmp_path / "ws", "ws1")
    async with httpx.AsyncClient(base_url=ws.url) as anonymous:
        assert (await anonymous.post("/api/interfaces/1/reserve")).status_code == 401
        assert (await anonymous.get("/api/interfaces")).status_code == 401
        page = await anonymous.get("/interfaces", headers={"accept": "text/html"})
        assert (page.status_code, page.headers["location"]) == (303, "/login?next=/interfaces")
    assert (await control(sim, "GET", "/vci"))["owner"] is None


async def test_discover_then_add_then_remove(
    start_simulator: StartSimulator,
    start_workstation: StartWorkstation,
    tmp_path: Path,
) -> None:
    sim = await start_simulator("g-series")
    vin = sim.state_json()["vin"]
    ws = await start_workstation(home=tmp_path / "ws")
    admin = await ws.login("root", Role.ADMIN)
    assert "No interface is known yet" in (await admin.get("/interfaces")).text

    found = await admin.get(
        "/interfaces/discover", params={"host": HOST, "port": str(sim.ports["doip"])}
    )
    assert found.status_code == 200
    assert "Found 1 vehicle(s)" in found.text
    assert f'aria-label="Add {vin}"' in found.text
    url = url_of(sim, "g-series")
    assert f'name="vci_url" value="{url}"' in found.text

    added = await admin.post(
        "/interfaces",
        data={
            "csrf": csrf_of(found.text),
            "vci_url": url,
            "name": vin,
            "admin_url": admin_url(sim),
        },
    )
    assert (added.status_code, added.headers["location"]) == (303, "/interfaces")
    [listed] = (await admin.get("/api/interfaces")).json()
    assert (listed["name"], listed["vci_url"], listed["state"]) == (vin, url, "free")

    again = await admin.post(
        "/interfaces", data={"csrf": csrf_of(found.text), "vci_url": url, "name": vin}
    )
    assert again.status_code == 400
    assert "exists already" in again.text

    removed = await admin.post(
        f"/interfaces/{listed['id']}/remove", data={"csrf": csrf_of(found.text)}
    )
    assert removed.status_code == 303
    assert (await admin.get("/api/interfaces")).json() == []


async def test_only_an_admin_adds_or_removes_interfaces(
    start_workstation: StartWorkstation,
    tmp_path: Path,
) -> None:
    ws = await start_workstation(home=tmp_path / "ws")
    ada = await ws.login("ada", Role.TECHNICIAN)
    page = await ada.get("/interfaces")
    assert "Add interface" not in page.text
    answer = await ada.post(
        "/interfaces",
        data={"csrf": csrf_of(page.text), "name": "x", "vci_url": "hsfz://127.0.0.1"},
    )
    assert answer.status_code == 403
    assert (await ada.get("/api/interfaces")).json() == []


async def test_an_interface_id_too_big_for_the_database_is_refused_not_a_server_error(
    start_simulator: StartSimulator,
    start_workstation: StartWorkstation,
    tmp_path: Path,
) -> None:
    # Found by schemathesis (make fuzz): the driver's integer overflow answered 500.
    sim = await start_simulator("f-series")
    ws = await bench_workstation(start_workstation, sim, tmp_path, "ws1")
    ada = await ws.login("ada", Role.TECHNICIAN)

    for path in ("/api/interfaces/{}/reserve", "/api/interfaces/{}/release"):
        answer = await ada.post(path.format(545802846527360110022889570304))
        assert answer.status_code == 422, answer.text
        assert "less than or equal to 9223372036854775807" in answer.text
    # The largest id the database holds is simply not there.
    assert (await ada.post(f"/api/interfaces/{2**63 - 1}/reserve")).status_code == 404
    assert (await control(sim, "GET", "/vci"))["owner"] is None
