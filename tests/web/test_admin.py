"""Administration through the web UI and its API, and the first admin from the CLI."""

from __future__ import annotations

import re
from contextlib import aclosing
from pathlib import Path

import httpx
from tests.test_cli import run_cli
from tests.web.conftest import HTML, PASSWORD, StartWorkstation, Workstation, csrf_of

from ecuworks.platform.users import Role


async def log_in(ws: Workstation, name: str, password: str) -> httpx.Response:
    """The answer to the login form (303 when it worked)."""
    async with httpx.AsyncClient(base_url=ws.url, headers=HTML, timeout=30) as client:
        token = csrf_of((await client.get("/login")).text)
        return await client.post(
            "/login", data={"csrf": token, "name": name, "password": password, "next": "/"}
        )


def shown_secret(page: str) -> str:
    found = re.search(r'id="secret" class="secret" value="([^"]+)"', page)
    assert found, "no secret on the page"
    return found.group(1)


async def test_an_admin_creates_a_technician_who_logs_in(
    start_workstation: StartWorkstation,
) -> None:
    ws = await start_workstation()
    async with aclosing(await ws.login("root", Role.ADMIN)) as admin:
        form = {"name": "ada", "role": "technician", "password": PASSWORD}
        created = await admin.post("/admin/users", data=form)
        assert created.status_code == 303
        page = await admin.get(created.headers["location"])
        assert "The user was created." in page.text
        assert '<th scope="row">ada</th>' in page.text
        async with aclosing(await ws.login("ada")) as ada:
            me = await ada.get("/api/me")
            assert me.json() == {"name": "ada", "role": "technician"}
            refused = await ada.get("/admin")
            assert refused.status_code == 403
            assert "ada is a technician; this needs a admin" in refused.text
            assert "/admin" not in (await ada.get("/")).text  # no Admin tile either
        audit = (await admin.get("/admin", params={"user": "root"})).text
        assert "user-created" in audit
        assert "ada as technician" in audit
        assert "ada" in (await admin.get("/admin", params={"user": "ada"})).text


async def test_role_disable_and_password_reset_take_effect_and_are_audited(
    start_workstation: StartWorkstation,
) -> None:
    ws = await start_workstation()
    async with aclosing(await ws.login("root", Role.ADMIN)) as admin:
        async with aclosing(await ws.login("ada", Role.VIEWER)) as ada:
            promoted = await admin.post("/admin/users/ada/role", data={"role": "technician"})
            assert promoted.status_code == 303
            assert (await ada.get("/api/me")).json()["role"] == "technician"
            assert (await admin.post("/admin/users/ada/disable")).status_code == 303
            assert (await ada.get("/")).status_code == 303  # logged out
        assert (await log_in(ws, "ada", PASSWORD)).status_code == 401
        assert (await admin.post("/admin/users/ada/enable")).status_code == 303
        assert (await log_in(ws, "ada", PASSWORD)).status_code == 303
        reset = await admin.post("/admin/users/ada/password")
        assert reset.status_code == 200
        assert "shown here once" in reset.text
        new_password = shown_secret(reset.text)
        assert (await log_in(ws, "ada", PASSWORD)).status_code == 401
        assert (await log_in(ws, "ada", new_password)).status_code == 303
        log = (await admin.get("/admin", params={"user": "root"})).text
        for action in ("role-changed", "user-disabled", "user-enabled", "password-reset"):
            assert action in log
        assert new_password not in log


async def test_tokens_from_the_page_are_shown_once_and_can_be_revoked(
    start_workstation: StartWorkstation,
) -> None:
    ws = await start_workstation()
    ws.add_user("ada", Role.TECHNICIAN)
    async with aclosing(await ws.login("root", Role.ADMIN)) as admin:
        issued = await admin.post("/admin/tokens", data={"user": "ada", "label": "bench 3"})
        token = shown_secret(issued.text)
        async with httpx.AsyncClient(base_url=ws.url, timeout=30) as script:
            bearer = {"authorization": f"Bearer {token}"}
            assert (await script.get("/api/me", headers=bearer)).json()["name"] == "ada"
            page = (await admin.get("/admin")).text
            assert token not in page
            revoke = re.search(r'action="(/admin/tokens/\d+/revoke)"', page)
            assert revoke
            assert (await admin.post(revoke.group(1))).status_code == 303
            assert (await script.get("/api/me", headers=bearer)).status_code == 401
        log = (await admin.get("/admin")).text
        assert "token-issued" in log
        assert "token-revoked" in log


async def test_mistakes_are_refused_with_the_reason(start_workstation: StartWorkstation) -> None:
    ws = await start_workstation()
    async with aclosing(await ws.login("root", Role.ADMIN)) as admin:
        short = await admin.post(
            "/admin/users", data={"name": "bob", "role": "viewer", "password": "short"}
        )
        assert short.status_code == 400
        assert "at least 10 characters" in short.text
        taken = await admin.post(
            "/admin/users", data={"name": "root", "role": "viewer", "password": PASSWORD}
        )
        assert "exists already" in taken.text
        itself = await admin.post("/admin/users/root/disable")
        assert itself.status_code == 400
        assert "ask another admin" in itself.text
        nobody = await admin.post("/admin/users/nobody/role", data={"role": "viewer"})
        assert "no user named &#39;nobody&#39;" in nobody.text
        api = await admin.post("/api/admin/users", json={"name": "root"})
        assert api.status_code == 400
        assert "exists already" in api.json()["detail"]
    assert (await log_in(ws, "root", PASSWORD)).status_code == 303  # still an admin


async def test_the_admin_api_creates_users_with_a_password_shown_once(
    start_workstation: StartWorkstation,
) -> None:
    ws = await start_workstation()
    async with aclosing(await ws.login("root", Role.ADMIN)) as admin:
        made = await admin.post("/api/admin/users", json={"name": "vera", "role": "viewer"})
        assert made.status_code == 201
        password = made.json()["password"]
        users = (await admin.get("/api/admin/users")).json()["users"]
        assert {u["name"]: u["role"] for u in users} == {"root": "admin", "vera": "viewer"}
        entries = (await admin.get("/api/admin/audit", params={"user": "root"})).json()["entries"]
        assert entries[0]["action"] == "user-created"
    assert (await log_in(ws, "vera", password)).status_code == 303


async def test_an_admin_and_token_from_the_cli_work_against_the_served_app(
    start_workstation: StartWorkstation, tmp_path: Path
) -> None:
    home = tmp_path / "cli-home"
    code, out, err = await run_cli("--home", str(home), "users", "create-admin", "boss")
    assert code == 0, err
    password = re.search(r"password \(shown once\): (\S+)", out)
    assert password, out
    code, out, err = await run_cli("--home", str(home), "users", "token", "boss", "--label", "ci")
    assert code == 0, err
    token = out.strip()
    ws = await start_workstation(home=home)
    async with httpx.AsyncClient(base_url=ws.url, timeout=30) as script:
        bearer = {"authorization": f"Bearer {token}"}
        assert (await script.get("/api/me", headers=bearer)).json() == {
            "name": "boss",
            "role": "admin",
        }
        tokens = (await script.get("/api/admin/tokens", headers=bearer)).json()["tokens"]
        assert [(t["user"], t["label"]) for t in tokens] == [("boss", "ci")]
    assert (await log_in(ws, "boss", password.group(1))).status_code == 303
    code, _, err = await run_cli("--home", str(home), "users", "create-admin", "boss")
    assert code == 2
    assert "exists already" in err
