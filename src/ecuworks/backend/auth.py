"""Who is asking the backend: a ``Bearer`` token, or a report page's session cookie.

Every route but ``/health``, the login form and the static P-Data files depends on
:func:`caller`: without a live token or session the API answers 401 (and a page shows the
login form with 401). A browser session must send its CSRF token with any request that
changes something (the form field ``csrf``); a Bearer token is no cookie and needs none.
"""

from __future__ import annotations

import secrets
from typing import Final

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from ecuworks.backend.accounts import (
    Caller,
    Role,
    authenticate_session,
    authenticate_token,
    workshop_by_name,
)
from ecuworks.errors import AccessDenied
from ecuworks.platform.db import Database
from ecuworks.web.auth import form_data  # the workstation's form parsing, one for both

__all__ = [
    "COOKIE",
    "NotAuthenticated",
    "caller",
    "database",
    "form_data",
    "person",
    "scope",
]

COOKIE: Final = "ecuworks_backend_session"
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


class NotAuthenticated(Exception):
    """No live token or session: 401."""


def database(request: Request) -> Database:
    """The app's database."""
    db: Database = request.app.state.db
    return db


async def caller(request: Request) -> Caller:
    """The authenticated caller (a FastAPI dependency).

    Raises:
        NotAuthenticated: no token or session, or a revoked or unknown one.
        AccessDenied: 403, a session's changing request without its CSRF token.
    """
    db = database(request)
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        found = await run_in_threadpool(authenticate_token, db, header[7:].strip())
        if found is None:
            raise NotAuthenticated(
                "the token is unknown or revoked; ask the backend's admin for a new one"
            )
        return found
    secret = request.cookies.get(COOKIE)
    session = await run_in_threadpool(authenticate_session, db, secret) if secret else None
    if session is None:
        raise NotAuthenticated("send 'Authorization: Bearer <token>', or log in")
    if request.method not in _SAFE_METHODS:
        sent = (await form_data(request)).get("csrf", "")
        if not secrets.compare_digest(sent.encode(), session.csrf.encode()):
            raise AccessDenied(
                "the form's security token is missing or stale; reload the page and try again",
                status=403,
            )
    return session


def person(who: Caller) -> Caller:
    """``who``, who must be a user (admin or analyst), not a workstation.

    Raises:
        AccessDenied: 403 for a workstation.
    """
    if who.is_workstation:
        raise AccessDenied("reports are for the backend's users, not for workstations")
    return who


def scope(db: Database, who: Caller, workshop: str | None) -> tuple[int | None, str | None]:
    """The workshop a read covers: (id, name), or (None, None) for every workshop.

    An admin reads any workshop (``workshop``) or all; an analyst or a workstation only
    its own, whether it names it or not.

    Raises:
        AccessDenied: 403, another workshop than the caller's own.
        ConfigError: no workshop of that name.
    """
    wanted = (workshop or "").strip() or None
    if who.role is Role.ADMIN:
        if wanted is None:
            return None, None
        with db.session() as session:
            return workshop_by_name(session, wanted).id, wanted
    if wanted is not None and wanted != who.workshop:
        raise AccessDenied(
            f"{who.name} belongs to workshop {who.workshop!r} and may read only its data"
        )
    return who.workshop_id, who.workshop
