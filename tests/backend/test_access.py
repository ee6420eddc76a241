"""Who may do what: every route refuses a caller without a live token, and a workshop
sees only its own history and obtains codes only for the vehicles it was granted."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount
from tests.backend.conftest import Backend, StartBackend, chain

from ecuworks.backend.accounts import revoke_workstation
from ecuworks.backend.app import create_backend
from ecuworks.backend.settings import BackendSettings
from ecuworks.enabling.fsc import verify_fsc
from ecuworks.pdata.source import DEMO_DIR
from ecuworks.wire.fsc import FscStatus

VIN_A = "WBA8E9C50GK123456"
VIN_B = "WBA3B1C50EK000001"
OPEN = {("GET", "/health"), ("GET", "/login"), ("POST", "/login")}


def routes(pdata_repo: Path) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, through included routers; the P-Data mount
    is the only mount."""
    app = create_backend(BackendSettings(db_url="sqlite://", pdata_repo=pdata_repo))
    found = []
    for context in iter_route_contexts(app.routes):
        route, path = context.original_route, context.path
        assert path is not None, route
        if isinstance(route, Mount):
            assert path == "/pdata"
            continue
        assert isinstance(route, APIRoute), f"teach this test to check a {route!r}"
        found += [(method, path) for method in sorted((context.methods or set()) - {"HEAD"})]
    return found


async def test_every_route_but_health_login_and_pdata_refuses_no_and_revoked_tokens(
    start_backend: StartBackend, tmp_path: Path, pdata_home: Path
) -> None:
    repository = pdata_home / DEMO_DIR / "repository"
    backend = await start_backend(pdata_repo=repository)
    backend.workshop("Alpha")
    token = backend.workstation("Alpha", "bay-1")
    revoke_workstation(backend.db, "Alpha", "bay-1")
    anonymous, revoked = backend.client(), backend.client(token)
    checked = 0

    for method, path in routes(repository):
        if (method, path) in OPEN:
            continue
        for client in (anonymous, revoked):
            answer = await client.request(method, path, json={})
            assert answer.status_code == 401, (method, path, answer.text)
            checked += 1

    assert checked >= 20
    assert (await anonymous.get("/health")).json() == {"status": "ok"}
    metadata = next(repository.glob("*.root.json"))
    served = await anonymous.get(f"/pdata/{metadata.name}")
    assert served.status_code == 200
    assert served.content == metadata.read_bytes()


async def test_a_revoked_workstation_is_refused_at_once(start_backend: StartBackend) -> None:
    backend = await start_backend()
    backend.workshop("Alpha")
    client = backend.client(backend.workstation("Alpha", "bay-1"))
    assert (await client.get("/api/v1/me")).json() == {
        "name": "bay-1",
        "role": "workstation",
        "workshop": "Alpha",
    }

    revoke_workstation(backend.db, "Alpha", "bay-1")

    refused = await client.get("/api/v1/me")
    assert refused.status_code == 401
    assert "unknown or revoked" in refused.json()["detail"]


async def two_workshops(start_backend: StartBackend, url: str) -> tuple[Backend, str, str]:
    backend = await start_backend(url)
    for name in ("Alpha", "Beta"):
        backend.workshop(name)
    return backend, backend.workstation("Alpha", "bay-1"), backend.workstation("Beta", "bay-1")


async def test_a_workstation_reads_only_its_own_workshops_history(
    start_backend: StartBackend, backend_url: str
) -> None:
    backend, token_a, token_b = await two_workshops(start_backend, backend_url)
    alpha, beta = backend.client(token_a), backend.client(token_b)
    sent = await alpha.post("/api/v1/events", json={"events": chain(VIN_A, "bay-1", 3)})
    assert len(sent.json()["accepted"]) == 3

    assert (await beta.get("/api/v1/events")).json() == {"events": [], "next": None}
    assert (await beta.get("/api/v1/events", params={"vin": VIN_A})).json()["events"] == []
    other = await beta.get("/api/v1/events", params={"workshop": "Alpha"})
    assert other.status_code == 403
    assert "may read only its data" in other.json()["detail"]
    assert (await beta.get("/api/v1/chains/verify")).json()["events"] == 0
    # Its own workshop's history, and the same chain name in another workshop is another
    # chain: Beta's bay-1 starts its own chain for the same VIN at seq 1.
    assert len((await alpha.get("/api/v1/events")).json()["events"]) == 3
    theirs = await beta.post("/api/v1/events", json={"events": chain(VIN_A, "bay-1", 1)})
    assert len(theirs.json()["accepted"]) == 1
    admin = backend.client(backend.user("root"))
    assert len((await admin.get("/api/v1/events")).json()["events"]) == 4
    only = await admin.get("/api/v1/events", params={"workshop": "Beta"})
    assert len(only.json()["events"]) == 1


async def test_fsc_only_for_granted_vins_and_applications(
    start_backend: StartBackend, backend_url: str
) -> None:
    backend, token_a, token_b = await two_workshops(start_backend, backend_url)
    backend.grant("Alpha", VIN_A[:5], 0x0041)
    backend.grant("Beta", VIN_B)
    alpha, beta = backend.client(token_a), backend.client(token_b)

    granted = await alpha.post(
        "/api/v1/fsc", json={"vin": VIN_A, "app_id": 0x0041, "upgrade_index": 2}
    )
    not_granted_vin = await alpha.post(
        "/api/v1/fsc", json={"vin": VIN_B, "app_id": 0x0041, "upgrade_index": 0}
    )
    other_app = await alpha.post(
        "/api/v1/fsc", json={"vin": VIN_A, "app_id": 0x0042, "upgrade_index": 0}
    )
    not_theirs = await beta.post(
        "/api/v1/fsc", json={"vin": VIN_A, "app_id": 0x0041, "upgrade_index": 0}
    )
    any_app = await beta.post(
        "/api/v1/fsc", json={"vin": VIN_B, "app_id": 0x1234, "upgrade_index": 1}
    )

    assert granted.status_code == 200, granted.text
    record = base64.b64decode(granted.json()["fsc"])
    public_key = bytes.fromhex((await alpha.get("/api/v1/fsc/public-key")).json()["public_key"])
    check = verify_fsc(record, public_key, VIN_A)
    assert check.status == FscStatus.ACCEPTED, check.reason
    assert check.code is not None
    assert (check.code.app_id, check.code.upgrade_index) == (0x0041, 2)
    assert verify_fsc(record, public_key, VIN_B).status != FscStatus.ACCEPTED
    assert not_granted_vin.status_code == 403
    assert f"has no grant for VIN {VIN_B}" in not_granted_vin.json()["detail"]
    assert other_app.status_code == 403
    assert "may enable only 0x0041" in other_app.json()["detail"]
    assert not_theirs.status_code == 403
    assert "workshop 'Beta' has no grant" in not_theirs.json()["detail"]
    assert any_app.status_code == 200


@pytest.mark.parametrize("who", ["admin", "analyst"])
async def test_users_get_no_enabling_codes(start_backend: StartBackend, who: str) -> None:
    backend = await start_backend()
    backend.workshop("Alpha")
    backend.grant("Alpha", VIN_A)
    user = backend.client(backend.user("u", "Alpha" if who == "analyst" else None))

    answer = await user.post("/api/v1/fsc", json={"vin": VIN_A, "app_id": 1, "upgrade_index": 0})

    assert answer.status_code == 403
    assert "issued to workstations only" in answer.json()["detail"]
