"""Central reports: figures computed from known events, per workshop and period, as JSON
and as a page with charts behind a login."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from tests.backend.conftest import PASSWORD, T0, Backend, StartBackend, chain

VIN = "WBA8E9C50GK123456"
VIN2 = "WBA8E9C50GK000002"


def program_report(
    outcome: str, wall_s: float, ilevel: str, ecus: list[tuple[str, int, str, float]]
) -> dict[str, Any]:
    """The data a programming session stores (execute.report.Report.to_json, abridged)."""
    return {
        "schema": 1,
        "target_ilevel": ilevel,
        "outcome": outcome,
        "wall_s": wall_s,
        "ecus": [
            {"ecu": address, "name": name, "status": status, "seconds": seconds, "actions": 2}
            for name, address, status, seconds in ecus
        ],
    }


def known_history() -> list[dict[str, Any]]:
    """Alpha's bay-1: VIN has 2 programs done, 1 failed final check, 1 stopped with an NRC,
    1 identify; VIN2 one stopped session (no NRC) a month later."""
    history: list[dict[str, Any]] = []
    prev = "0" * 64
    for seq, (kind, outcome, data) in enumerate(
        [
            ("identify", "read", {}),
            (
                "program",
                "done",
                program_report(
                    "done",
                    100.0,
                    "F030-24-03-550",
                    [("DME", 0x12, "done", 60.0), ("EGS", 0x18, "done", 30.0)],
                ),
            ),
            (
                "program",
                "done",
                program_report("done", 200.0, "F030-24-07-550", [("DME", 0x12, "done", 80.0)]),
            ),
            (
                "program",
                "failed",
                program_report(
                    "failed",
                    300.0,
                    "F030-24-07-550",
                    [("DME", 0x12, "done", 70.0), ("EGS", 0x18, "failed", 50.0)],
                ),
            ),
            (
                "program",
                "failed",
                {
                    "target_ilevel": "F030-24-07-550",
                    "error": "DME (0x12): SWFL download failed 3 times (last: NegativeResponse: "
                    "service 0x36 refused from ECU 0x12: NRC 0x72 generalProgrammingFailure); "
                    "fix the cause and run 'ecuworks resume'",
                },
            ),
        ],
        start=1,
    ):
        [event] = chain(
            VIN, "bay-1", 1, start=seq, prev_hash=prev, kind=kind, outcome=outcome, data=data
        )
        history.append(event)
        prev = event["hash"]
    history += chain(
        VIN2,
        "bay-1",
        1,
        kind="program",
        outcome="failed",
        data={"target_ilevel": "F030-24-07-550", "error": "battery 11.9 V is below 13.0 V"},
        at=T0 + timedelta(days=30),
    )
    return history


async def alpha_with_history(start_backend: StartBackend, url: str | None = None) -> Backend:
    backend = await start_backend(url)
    for name in ("Alpha", "Beta"):
        backend.workshop(name)
    backend.grant("Alpha", "WBA")
    alpha = backend.client(backend.workstation("Alpha", "bay-1"))
    answer = await alpha.post("/api/v1/events", json={"events": known_history()})
    assert len(answer.json()["accepted"]) == 6, answer.text
    for app_id in (0x41, 0x41, 0x42):
        issued = await alpha.post(
            "/api/v1/fsc", json={"vin": VIN, "app_id": app_id, "upgrade_index": 1}
        )
        assert issued.status_code == 200
    beta = backend.client(backend.workstation("Beta", "bay-9"))
    await beta.post("/api/v1/events", json={"events": chain(VIN, "bay-9", 4, outcome="failed")})
    return backend


async def test_report_figures_from_known_events(
    start_backend: StartBackend, backend_url: str
) -> None:
    backend = await alpha_with_history(start_backend, backend_url)
    analyst = backend.client(backend.user("ana", "Alpha"))

    report = (await analyst.get("/api/v1/reports")).json()

    assert report["workshop"] == "Alpha"
    sessions = report["sessions"]
    assert (sessions["total"], sessions["succeeded"], sessions["success_rate"]) == (6, 3, 0.5)
    assert sessions["by_kind"] == [
        {"kind": "identify", "total": 1, "outcomes": {"read": 1}, "success_rate": 1.0},
        {"kind": "program", "total": 5, "outcomes": {"done": 2, "failed": 3}, "success_rate": 0.4},
    ]
    assert report["duration"] == {
        "by_ecu": [
            {"ecu": "DME (0x12)", "sessions": 3, "mean_s": 70.0},
            {"ecu": "EGS (0x18)", "sessions": 2, "mean_s": 40.0},
        ],
        "by_ilevel": [
            {"ilevel": "F030-24-03-550", "sessions": 1, "mean_s": 100.0},
            {"ilevel": "F030-24-07-550", "sessions": 2, "mean_s": 250.0},
        ],
    }
    assert report["failures"] == {
        "total": 3,
        "top": [
            {"ecu": "DME (0x12)", "nrc": "0x72 generalProgrammingFailure", "count": 1},
            {"ecu": "EGS (0x18)", "nrc": None, "count": 1},
            {"ecu": "vehicle", "nrc": None, "count": 1},
        ],
    }
    assert report["fsc"] == {
        "issued": 3,
        "by_app": [{"app_id": "0x0041", "count": 2}, {"app_id": "0x0042", "count": 1}],
    }


async def test_a_period_and_the_admins_view_of_every_workshop(
    start_backend: StartBackend,
) -> None:
    backend = await alpha_with_history(start_backend)
    admin = backend.client(backend.user("root"))

    everything = (await admin.get("/api/v1/reports")).json()
    early = (
        await admin.get(
            "/api/v1/reports",
            params={"workshop": "Alpha", "since": "2026-11-01", "until": "2026-11-03"},
        )
    ).json()

    assert everything["workshop"] is None
    assert everything["sessions"]["total"] == 10  # Alpha's 6 and Beta's 4
    assert early["sessions"]["total"] == 5  # VIN2's stop was a month later
    assert early["since"] == "2026-11-01T00:00:00+00:00"
    assert early["failures"]["total"] == 2


async def test_an_analyst_sees_only_their_workshop_and_a_workstation_no_reports(
    start_backend: StartBackend,
) -> None:
    backend = await alpha_with_history(start_backend)
    analyst = backend.client(backend.user("bea", "Beta"))
    station = backend.client(backend.workstation("Alpha", "bay-2"))

    own = await analyst.get("/api/v1/reports")
    other = await analyst.get("/api/v1/reports", params={"workshop": "Alpha"})
    refused = await station.get("/api/v1/reports")

    assert own.json()["sessions"]["total"] == 4
    assert own.json()["fsc"]["issued"] == 0
    assert other.status_code == 403
    assert refused.status_code == 403
    assert "not for workstations" in refused.json()["detail"]


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


async def test_the_report_page_behind_a_login_with_svg_charts(
    start_backend: StartBackend,
) -> None:
    backend = await alpha_with_history(start_backend)
    backend.user("ana", "Alpha")
    browser = backend.client()
    browser.headers["accept"] = "text/html"

    refused = await browser.get("/reports")
    assert refused.status_code == 401
    assert "Log in" in refused.text
    wrong = await browser.post(
        "/login", data={"csrf": csrf_of(refused.text), "name": "ana", "password": "nope"}
    )
    assert wrong.status_code == 401
    assert "wrong user name or password" in wrong.text
    forged = await browser.post(
        "/login", data={"csrf": "forged", "name": "ana", "password": PASSWORD}
    )
    assert forged.status_code == 403
    form = await browser.get("/login")
    logged = await browser.post(
        "/login", data={"csrf": csrf_of(form.text), "name": "ana", "password": PASSWORD}
    )
    assert logged.status_code == 303
    page = await browser.get("/reports")

    assert page.status_code == 200
    assert "Reports: Alpha" in page.text
    assert page.text.count("<svg") == 5
    assert "DME (0x12): 70.0 s" in page.text
    assert "<script" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    # Logging out needs the page's CSRF token; without it nothing ends.
    assert (await browser.post("/logout", data={})).status_code == 403
    out = await browser.post("/logout", data={"csrf": csrf_of(page.text)})
    assert out.status_code == 303
    assert (await browser.get("/reports")).status_code == 401
