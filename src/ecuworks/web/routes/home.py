"""Login, logout, the launcher and health."""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ecuworks.errors import AccessDenied
from ecuworks.platform.users import Role, end_session, log_in
from ecuworks.web.auth import COOKIE, Caller, database, form_data, require
from ecuworks.web.pages import render
from ecuworks.web.responses import responses
from ecuworks.web.settings import WebSettings

__all__ = ["router"]

router = APIRouter()
_LOGIN_CSRF: Final = "ecuworks_login_csrf"


def _settings(request: Request) -> WebSettings:
    settings: WebSettings = request.app.state.settings
    return settings


def _safe_next(target: str) -> str:
    """Only a path on this site: never an open redirect."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    """Liveness for a load balancer or a script; no login needed."""
    return {"status": "ok", "database": database(request).dialect}


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/") -> Response:
    """The login form (with a double-submit CSRF token: there is no session yet)."""
    token = secrets.token_urlsafe(32)
    response = render(
        request, "login.html", {"login_csrf": token, "next": _safe_next(next), "error": None}
    )
    response.set_cookie(
        _LOGIN_CSRF,
        token,
        httponly=True,
        samesite="strict",
        secure=_settings(request).secure_cookies,
    )
    return response


@router.post("/login", responses=responses(303, 401, 403, 429))
async def login(request: Request) -> Response:
    """Check the name and password; on success set the session cookie and go on."""
    fields = await form_data(request)
    target = _safe_next(fields.get("next", "/"))
    cookie = request.cookies.get(_LOGIN_CSRF, "")
    if not cookie or not secrets.compare_digest(cookie, fields.get("csrf", "")):
        raise AccessDenied("the login form is stale; reload the page and log in again")
    address = request.client.host if request.client else "unknown"
    try:
        login = log_in(
            database(request), fields.get("name", ""), fields.get("password", ""), address=address
        )
    except AccessDenied as error:
        return render(
            request,
            "login.html",
            {"login_csrf": cookie, "next": target, "error": str(error)},
            status=error.status,
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        login.secret,
        httponly=True,
        samesite="lax",
        secure=_settings(request).secure_cookies,
        max_age=12 * 3600,
    )
    response.delete_cookie(_LOGIN_CSRF)
    return response


@router.post("/logout", responses=responses(303))
async def logout(
    request: Request, _caller: Annotated[Caller, Depends(require(Role.VIEWER))]
) -> Response:
    """End the browser session."""
    secret = request.cookies.get(COOKIE)
    if secret:
        end_session(database(request), secret)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/", response_class=HTMLResponse)
async def launcher(
    request: Request, _caller: Annotated[Caller, Depends(require(Role.VIEWER))]
) -> Response:
    """The application launcher."""
    return render(request, "launcher.html")


@router.get("/api/me")
async def me(caller: Annotated[Caller, Depends(require(Role.VIEWER))]) -> dict[str, Any]:
    """Who the token or session belongs to."""
    return {"name": caller.name, "role": str(caller.role)}


def login_url(path: str) -> str:
    """The login page that comes back to ``path``."""
    return f"/login?next={quote(path)}"
