"""Every route refuses a caller without a login, and a viewer cannot change anything.

The routes are enumerated from the app, never listed by hand: a route added later without
``require(...)`` fails here. The only public routes are below, each with its reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute, Mount, Route
from tests.web.conftest import PASSWORD, StartWorkstation

from ecuworks.platform.users import Role, create_token, create_user
from ecuworks.web.app import create_app

VIN = "WBA00000000000001"
PUBLIC = {
    ("/login", "GET"): "the login form",
    ("/login", "POST"): "logging in",
    ("/health", "GET"): "liveness for a load balancer; says nothing but 'ok' and the dialect",
    ("/vendor/{name}", "GET"): "htmx, the same public JavaScript as on npm",
}
PUBLIC_MOUNTS = {"/static": "the style sheet"}
VIEWER_MAY_POST = {("/logout", "POST"): "ending one's own session"}


def _value(name: str, convertor: str | None) -> str:
    if "vin" in name.lower():
        return VIN
    if convertor == "path":
        return "x/y"
    return "1"


def concrete(path: str) -> str:
    """``path`` with every ``{param}`` replaced by a plausible value."""
    return re.sub(r"\{(\w+)(?::(\w+))?\}", lambda m: _value(m.group(1), m.group(2)), path)


def endpoints(routes: list[BaseRoute]) -> Iterator[tuple[str, str]]:
    """(path template, method) of every route, through included routers; a mount as
    (its path + '/{mounted}', 'GET')."""
    for context in iter_route_contexts(routes):
        route, path = context.original_route, context.path
        assert path is not None, f"a route without a path: {route!r}"
        if isinstance(route, APIRoute | Route):
            for method in sorted(context.methods or ()):
                yield path, method
        elif isinstance(route, Mount):
            yield path + "/{mounted}", "GET"
        else:
            raise AssertionError(f"this test cannot check a {type(route).__name__}: teach it")


def headers_for(path: str) -> dict[str, str]:
    """A browser asks for HTML, a script for JSON."""
    if path.startswith("/api/"):
        return {"accept": "application/json"}
    return {"accept": "text/html"}


async def all_endpoints(
    start_workstation: StartWorkstation,
) -> tuple[str, list[tuple[str, str]], httpx.AsyncClient]:
    ws = await start_workstation()
    app = create_app(ws.settings, db=ws.db)
    found = list(endpoints(app.routes))
    create_user(ws.db, "vera", PASSWORD, Role.VIEWER)
    token = create_token(ws.db, "vera", "test")
    return token, found, httpx.AsyncClient(base_url=ws.url, timeout=30)


async def test_every_route_refuses_without_a_login(
    start_workstation: StartWorkstation,
) -> None:
    _, found, client = await all_endpoints(start_workstation)
    checked, wrong = 0, []
    async with client:
        for path, method in found:
            mount = path.removesuffix("/{mounted}")
            if (path, method) in PUBLIC or mount in PUBLIC_MOUNTS:
                continue
            url = concrete(path)
            answer = await client.request(method, url, headers=headers_for(url))
            checked += 1
            if url.startswith("/api/"):
                if answer.status_code != 401:
                    wrong.append(f"{method} {path}: {answer.status_code}, not 401")
            elif answer.status_code != 303 or not answer.headers.get("location", "").startswith(
                "/login"
            ):
                wrong.append(
                    f"{method} {path}: {answer.status_code} "
                    f"{answer.headers.get('location')}, not 303 to /login"
                )
    assert not wrong, "routes answer without a login:\n" + "\n".join(wrong)
    assert checked >= 10  # the admin, data and reports routes at least


async def test_the_public_routes_are_still_there(
    start_workstation: StartWorkstation,
) -> None:
    """The exceptions are real routes (a renamed one must not leave a stale exception)."""
    _, found, client = await all_endpoints(start_workstation)
    assert set(PUBLIC) <= set(found)
    async with client:
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/login")).status_code == 200
        assert (await client.get("/static/style.css")).status_code == 200
        assert (await client.get("/api/openapi.json")).status_code == 401
        assert (await client.get("/openapi.json")).status_code == 404
        assert (await client.get("/api/docs")).status_code in {401, 404}


async def test_a_viewer_token_cannot_change_anything(
    start_workstation: StartWorkstation,
) -> None:
    token, found, client = await all_endpoints(start_workstation)
    changing = [
        (path, method)
        for path, method in found
        if method not in {"GET", "HEAD", "OPTIONS"}
        and (path, method) not in PUBLIC
        and (path, method) not in VIEWER_MAY_POST
    ]
    wrong = []
    async with client:
        me = await client.get("/api/me", headers={"authorization": f"Bearer {token}"})
        assert me.json() == {"name": "vera", "role": "viewer"}
        for path, method in changing:
            url = concrete(path)
            headers = {**headers_for(url), "authorization": f"Bearer {token}"}
            answer = await client.request(method, url, headers=headers)
            if answer.status_code != 403:
                wrong.append(f"{method} {path}: {answer.status_code}")
    assert not wrong, "a viewer was not refused:\n" + "\n".join(wrong)
    assert len(changing) >= 8  # the admin forms, the token API and the P-Data sync at least
