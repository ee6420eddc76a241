"""The answers a route gives besides its success, declared in the OpenAPI schema.

A client (and schemathesis, ``make fuzz``) reads the schema to know what a route may
answer; an answer the schema does not list looks like a bug even when it is the right one.
Each route lists its own with ``responses=responses(404, 502)``; :func:`declare_common`
adds those of the login to every route behind it.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI
from fastapi.routing import APIRoute

__all__ = ["declare_common", "responses"]

WHY: Final = {
    303: "See other: the form was handled (or a page needs the login); follow Location.",
    400: "Bad request: a value is wrong; the detail says which and what to give instead.",
    401: "Not logged in: no session, a wrong password, or an unknown or revoked API token.",
    403: "Not allowed: the role is too small, or a form's security token is missing.",
    404: "Not found: no such interface, vehicle record, plan, session or token.",
    409: "Conflict: not now (the interface is not reserved, a warning is unconfirmed, the "
    "data is not configured); the detail says what to do first.",
    413: "Too large: the body is over the limit; send less at a time.",
    429: "Locked: too many wrong passwords; wait and try again.",
    502: "The vehicle, its interface or the repository did not answer as it should; "
    "nothing was written.",
    503: "The database is unavailable; try again once it is back.",
}
# Every route behind the login: the JSON API answers 401, a page redirects (303) to it.
_BEHIND_LOGIN: Final = (401, 403, 503)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of ``codes``, each with why it is answered."""
    return {code: {"description": WHY[code]} for code in codes}


def declare_common(app: FastAPI, public: frozenset[str], *, pages_redirect: bool) -> None:
    """Add the login's answers to every route in the schema whose path is not ``public``
    (with ``pages_redirect``, a page outside ``/api/`` sends a stranger to the login: 303)."""
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        if route.path in public:
            continue
        page = pages_redirect and not route.path.startswith("/api/")
        common = (303, *_BEHIND_LOGIN) if page else _BEHIND_LOGIN
        route.responses = {**responses(*common), **route.responses}
