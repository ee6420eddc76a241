"""The P-Data page (status, sync) and the reports over the vehicle history."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path

from tests.web.conftest import StartWorkstation

from ecuworks.pdata.serve import serve_directory
from ecuworks.pdata.source import DEMO_DIR
from ecuworks.pdata.store import LocalStore
from ecuworks.platform import history
from ecuworks.platform.sync import configure
from ecuworks.platform.users import Role

VIN = "WBA00000000000042"


async def test_the_data_page_says_which_pdata_is_used(
    start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    ws = await start_workstation(home=pdata_home)
    async with aclosing(await ws.login("vera", Role.VIEWER)) as viewer:
        page = (await viewer.get("/data")).text
        assert "the demo data of the simulated vehicles" in page
        assert "ecuworks pdata sync URL --root FILE" in page
        assert "Sync now" not in page
        status = (await viewer.get("/api/data")).json()
        assert status["demo"] is True
        assert status["series"]
        assert all(s["units"] > 0 for s in status["series"])
        assert all(f'<th scope="row">{s["series"]}</th>' in page for s in status["series"])
        assert (await viewer.post("/data/sync")).status_code == 403


async def test_an_admin_syncs_the_configured_repository(
    start_workstation: StartWorkstation, pdata_home: Path, tmp_path: Path
) -> None:
    demo = pdata_home / DEMO_DIR
    running, _ = await serve_directory(demo / "repository")
    try:
        home = tmp_path / "synced"
        LocalStore(home).configure(running.url, (demo / "root.json").read_bytes())
        ws = await start_workstation(home=home)
        async with aclosing(await ws.login("root", Role.ADMIN)) as admin:
            never = (await admin.get("/data")).text
            assert "cannot be used" in never  # configured but never synced: said, not hidden
            synced = await admin.post("/data/sync")
            assert synced.status_code == 303
            page = (await admin.get("/data")).text
            assert "synced: " in page
            assert "images verified" in page
            assert (await admin.get("/api/data")).json()["demo"] is False
    finally:
        await running.close()
    async with aclosing(await ws.login("ada", Role.TECHNICIAN)) as ada:
        assert (await ada.post("/data/sync")).status_code == 403
        async with aclosing(await ws.login("root")) as admin:
            failed = await admin.post("/data/sync")  # the repository server is gone
        assert failed.status_code == 502
        assert "The sync failed" in failed.text
        assert "failed: " in failed.text  # and recorded among the last syncs


async def test_without_a_repository_the_sync_says_how_to_configure_one(
    start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    ws = await start_workstation(home=pdata_home)
    async with aclosing(await ws.login("root", Role.ADMIN)) as admin:
        answer = await admin.post("/data/sync")
        assert answer.status_code == 409
        assert "No P-Data repository is configured" in answer.text


def record(kind: str, outcome: str, wall_s: float | None = None) -> history.Entry:
    return history.Entry(
        vin=VIN,
        kind=kind,
        user="ada",
        workstation="bench-1",
        outcome=outcome,
        summary=f"{kind} {outcome}",
        data={} if wall_s is None else {"wall_s": wall_s},
    )


async def test_reports_count_outcomes_success_and_duration(
    start_workstation: StartWorkstation,
) -> None:
    ws = await start_workstation()
    for entry in (
        record("identify", "read"),
        record("program", "done", 10.0),
        record("program", "failed", 20.0),
        record("program", "refused"),
        record("code", "done"),
    ):
        history.append(ws.db, entry)
    async with aclosing(await ws.login("vera", Role.VIEWER)) as viewer:
        report = (await viewer.get("/api/reports")).json()
        kinds = {k["kind"]: k for k in report["kinds"]}
        assert report["total"] == 5
        assert kinds["program"]["outcomes"] == {"done": 1, "failed": 1, "refused": 1}
        assert kinds["program"]["success_rate"] == round(1 / 3, 4)
        assert kinds["program"]["mean_wall_s"] == 15.0
        assert kinds["identify"]["success_rate"] == 1.0
        assert kinds["identify"]["mean_wall_s"] is None
        assert [r["summary"] for r in report["latest"]] == [
            "code done",
            "program refused",
            "program failed",
            "program done",
            "identify read",
        ]
        page = (await viewer.get("/reports")).text
        assert "33 %" in page
        assert "15.0 s" in page
        assert f'href="/history/{VIN}"' in page


async def test_the_data_page_shows_what_of_the_history_waits_for_the_backend(
    start_workstation: StartWorkstation, pdata_home: Path
) -> None:
    ws = await start_workstation(home=pdata_home)
    history.append(
        ws.db,
        history.Entry(
            vin=VIN, kind="identify", user="ada", workstation="bay-1", outcome="read", summary="x"
        ),
    )
    viewer = await ws.login("vera", Role.VIEWER)
    page = (await viewer.get("/data")).text
    assert "No backend is configured: the history stays on this workstation (1 record(s)" in page

    configure(ws.db, "http://127.0.0.1:9", "ew_token")  # nothing listens on port 9
    page = (await viewer.get("/data")).text
    assert "<dt>Backend</dt><dd>http://127.0.0.1:9</dd>" in page
    assert "<dt>Sent</dt><dd>0 record(s)" in page
    assert '<dt>Waiting</dt><dd class="warn">1, the oldest written' in page
