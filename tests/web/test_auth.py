"""Logging in and out over HTTP: lockout, CSRF, API tokens, redirects and cookies."""

from __future__ import annotations

from contextlib import aclosing

import httpx
import pytest
from tests.web.conftest import HTML, PASSWORD, StartWorkstation, Workstation, csrf_of

from ecuworks.platform.users import LOCK_AFTER, Role, user_states
from ecuworks.web.auth import COOKIE


async def login_form(
    client: httpx.AsyncClient, name: str, password: str, next: str = "/"
) -> httpx.Response:
    """Post the login form as a browser does (its CSRF token from the form page)."""
    token = csrf_of((await client.get("/login")).text)
    return await client.post(
        "/login", data={"csrf": token, "name": name, "password": password, "next": next}
    )


def browser(ws: Workstation) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=ws.url, headers=HTML, timeout=30)


async def test_five_wrong_passwords_lock_the_account(start_workstation: StartWorkstation) -> None:
    ws = await start_workstation()
    ws.add_user("ada", Role.TECHNICIAN)
    async with browser(ws) as client:
        for _ in range(LOCK_AFTER):
            wrong = await login_form(client, "ada", "not the password")
            assert wrong.status_code == 401
            assert "wrong user name or password" in wrong.text
        locked = await login_form(client, "ada", PASSWORD)
        assert locked.status_code == 429
        assert f"is locked after {LOCK_AFTER} failed logins" in locked.text
        assert COOKIE not in client.cookies
        assert (await client.get("/")).status_code == 303


async def test_a_form_without_its_csrf_token_changes_nothing(
    start_workstation: StartWorkstation,
) -> None:
    ws = await start_workstation()
    async with aclosing(await ws.login("root", Role.ADMIN)) as admin:
        del admin.headers["x-csrf-token"]
        form = {"name": "mallory", "role": "admin", "password": PASSWORD}
        refused = await admin.post("/admin/users", data=form)
        assert refused.status_code == 403
        assert "security token is missing or stale" in refused.text
        forged = await admin.post("/admin/users", data={**form, "csrf": "forged"})
        assert forged.status_code == 403
    assert [u.principal.name for u in user_states(ws.db)] == ["root"]


async def test_an_api_token_works_until_it_is_revoked(start_workstation: StartWorkstation) -> None:
    ws = await start_workstation()
    async with aclosing(await ws.login("root", Role.ADMIN)) as admin:
        ws.add_user("ada", Role.TECHNICIAN)
        issued = await admin.post("/api/admin/tokens", json={"user": "ada", "label": "bench"})
        assert issued.status_code == 201
        token = issued.json()["token"]
        async with httpx.AsyncClient(base_url=ws.url, timeout=30) as script:
            bearer = {"authorization": f"Bearer {token}"}
            me = await script.get("/api/me", headers=bearer)
            assert me.json() == {"name": "ada", "role": "technician"}
            listed = (await admin.get("/api/admin/tokens")).json()["tokens"]
            assert [(t["user"], t["label"], t["revoked"]) for t in listed] == [
                ("ada", "bench", False)
            ]
            assert token not in str(listed)
            revoked = await admin.delete(f"/api/admin/tokens/{listed[0]['id']}")
            assert revoked.json()["revoked"] is True
            refused = await script.get("/api/me", headers=bearer)
            assert refused.status_code == 401
            assert "unknown or revoked" in refused.json()["detail"]


async def test_logout_ends_the_session_on_the_server(start_workstation: StartWorkstation) -> None:
    ws = await start_workstation()
    async with aclosing(await ws.login("ada", Role.TECHNICIAN)) as client:
        secret = client.cookies[COOKIE]
        out = await client.post("/logout")
        assert out.status_code == 303
        assert out.headers["location"] == "/login"
        assert (await client.get("/")).status_code == 303
    async with browser(ws) as replay:  # the old cookie, kept by someone else
        replay.cookies.set(COOKIE, secret)
        answer = await replay.get("/")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/login")


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/x", "/\\evil.example", "http:/evil.example"],
)
async def test_next_never_leaves_the_site(start_workstation: StartWorkstation, target: str) -> None:
    ws = await start_workstation()
    ws.add_user("ada", Role.TECHNICIAN)
    async with browser(ws) as client:
        page = await client.get("/login", params={"next": target})
        assert "evil" not in page.text
        answer = await login_form(client, "ada", PASSWORD, next=target)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/"


async def test_next_comes_back_to_the_page_asked_for(start_workstation: StartWorkstation) -> None:
    ws = await start_workstation()
    ws.add_user("ada", Role.TECHNICIAN)
    async with browser(ws) as client:
        first = await client.get("/reports")
        assert first.headers["location"] == "/login?next=/reports"
        answer = await login_form(client, "ada", PASSWORD, next="/reports")
        assert answer.headers["location"] == "/reports"
        assert (await client.get("/reports")).status_code == 200


async def test_cookies_are_httponly_and_samesite(start_workstation: StartWorkstation) -> None:
    ws = await start_workstation()
    ws.add_user("ada", Role.TECHNICIAN)
    async with browser(ws) as client:
        form = await client.get("/login")
        answer = await login_form(client, "ada", PASSWORD)
    cookies = [*form.headers.get_list("set-cookie"), *answer.headers.get_list("set-cookie")]
    session = [c for c in cookies if c.startswith(f"{COOKIE}=")]
    assert session, cookies
    for cookie in cookies:
        if "max-age=0" in cookie.lower() or "expires=thu, 01 jan 1970" in cookie.lower():
            continue  # deleting a cookie
        flags = cookie.lower()
        assert "httponly" in flags, cookie
        assert "samesite=lax" in flags or "samesite=strict" in flags, cookie
