"""Who is asking: a browser session (cookie + CSRF token) or an API token (Bearer).

Every route but login, health and static files depends on :func:`require`: without a
login a page answers 303 to ``/login`` and an API route 401; with too small a role, 403.
A request that changes something (any method but GET and HEAD) from a browser session must
carry the session's CSRF token, as the form field ``csrf`` or the ``X-CSRF-Token`` header
(htmx sends the header); an API token is not a cookie, so it needs none.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

from fastapi import Request

from ecuworks.errors import AccessDenied
from ecuworks.platform.db import Database
from ecuworks.platform.users import Principal, Role, authenticate_session, authenticate_token

__all__ = [
    "COOKIE",
    "MAX_FORM_BYTES",
    "Caller",
    "NotLoggedIn",
    "database",
    "form_data",
    "require",
    "wants_html",
]

COOKIE: Final = "ecuworks_session"
MAX_FORM_BYTES: Final = 64 * 1024
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


class NotLoggedIn(Exception):
    """No valid session or token: pages redirect to the login, the API answers 401."""


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of a request.

    Attributes:
        principal: the user.
        csrf: the session's CSRF token (empty for an API token).
        via_token: authenticated by an API token.
    """

    principal: Principal
    csrf: str
    via_token: bool

    @property
    def name(self) -> str:
        """The user's name."""
        return self.principal.name

    @property
    def role(self) -> Role:
        """The user's role."""
        return self.principal.role


def database(request: Request) -> Database:
    """The app's database."""
    db: Database = request.app.state.db
    return db


def wants_html(request: Request) -> bool:
    """True for a browser page request, False for the JSON API."""
    if request.url.path.startswith("/api/"):
        return False
    return "text/html" in request.headers.get("accept", "") or not request.headers.get("accept")


async def form_data(request: Request) -> dict[str, str]:
    """The request's ``application/x-www-form-urlencoded`` fields (read once, cached).

    Raises:
        AccessDenied: 413 when the body is larger than :data:`MAX_FORM_BYTES`.
    """
    cached: dict[str, str] | None = getattr(request.state, "form", None)
    if cached is not None:
        return cached
    fields: dict[str, str] = {}
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise AccessDenied("the form is too large", status=413)
        fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    request.state.form = fields
    return fields


async def _caller(request: Request) -> Caller:
    db = database(request)
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        principal = authenticate_token(db, header[7:].strip())
        if principal is None:
            raise NotLoggedIn("the API token is unknown or revoked")
        return Caller(principal, "", via_token=True)
    secret = request.cookies.get(COOKIE)
    found = authenticate_session(db, secret) if secret else None
    if found is None:
        raise NotLoggedIn("log in first")
    principal, csrf = found
    if request.method not in _SAFE_METHODS:
        sent = request.headers.get("x-csrf-token") or (await form_data(request)).get("csrf", "")
        if not secrets.compare_digest(sent.encode(), csrf.encode()):
            raise AccessDenied(
                "the form's security token is missing or stale; reload the page and try again",
                status=403,
            )
    return Caller(principal, csrf, via_token=False)


def require(role: Role) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency: the caller, who must have at least ``role``."""

    async def dependency(request: Request) -> Caller:
        caller = await _caller(request)
        caller.principal.require(role)
        request.state.caller = caller
        return caller

    return dependency
