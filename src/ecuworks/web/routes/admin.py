"""Administration: users, roles, API tokens and the audit log (admins only).

Every change is written to the audit log. A new password or token is shown once, on the
page that answers the form (it is stored only hashed); everything else redirects back to
``/admin`` (303) so that reloading never repeats an action. The same is offered as JSON
under ``/api/admin/...`` for scripts and the CLI (Bearer token).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from ecuworks.errors import ConfigError
from ecuworks.platform.db import Database
from ecuworks.platform.history import utc
from ecuworks.platform.users import (
    Role,
    TokenInfo,
    UserState,
    audit,
    audit_entries,
    create_token,
    create_user,
    list_tokens,
    revoke_token_id,
    set_disabled,
    set_password,
    set_role,
    user_states,
)
from ecuworks.web.auth import Caller, database, form_data, require
from ecuworks.web.pages import render
from ecuworks.web.params import RowId
from ecuworks.web.responses import responses

__all__ = ["router"]

router = APIRouter()
Admin = Annotated[Caller, Depends(require(Role.ADMIN))]
Viewer = Annotated[Caller, Depends(require(Role.VIEWER))]
FormAction = Callable[[Database, dict[str, str]], Awaitable[Response]]

_NOTICES: Final = {
    "created": "The user was created.",
    "role": "The role was changed.",
    "disabled": "The user was disabled and logged out.",
    "enabled": "The user was enabled.",
    "revoked": "The API token was revoked.",
}


def _role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise ConfigError(f"the role must be one of {', '.join(Role)}, got {text!r}") from None


def _not_self(caller: Caller, name: str, what: str) -> None:
    """An admin cannot lock itself out: another admin must do it."""
    if name == caller.name:
        raise ConfigError(f"you cannot {what} your own account; ask another admin")


def _back(notice: str) -> Response:
    return RedirectResponse(f"/admin?done={notice}", status_code=303)


async def _admin_page(
    request: Request, *, error: str | None = None, status: int = 200
) -> HTMLResponse:
    db = database(request)
    vin = request.query_params.get("vin", "")
    user = request.query_params.get("user", "")
    return render(
        request,
        "admin.html",
        {
            "users": user_states(db),
            "tokens": list_tokens(db),
            "entries": [
                {
                    "at": utc(e.at),
                    "user": e.user,
                    "action": e.action,
                    "vin": e.vin,
                    "detail": e.detail,
                }
                for e in audit_entries(db, vin=vin, user=user)
            ],
            "roles": list(Role),
            "vin": vin,
            "user": user,
            "notice": _NOTICES.get(request.query_params.get("done", "")),
            "error": error,
        },
        status=status,
    )


def _secret_page(request: Request, title: str, what: str, secret: str) -> HTMLResponse:
    return render(request, "admin_secret.html", {"title": title, "what": what, "secret": secret})


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(request: Request, _caller: Admin) -> Response:
    """Users, tokens and the audit log (``?vin=`` / ``?user=`` filter the log)."""
    return await _admin_page(request)


async def _form_action(request: Request, action: FormAction) -> Response:
    """Run a form's action; a refusal shows the admin page with the reason (400)."""
    try:
        return await action(database(request), await form_data(request))
    except ConfigError as error:
        return await _admin_page(request, error=str(error), status=400)


@router.post("/admin/users", response_class=HTMLResponse, responses=responses(303, 400))
async def create_user_form(request: Request, caller: Admin) -> Response:
    """Create a user with the name, role and password of the form."""

    async def action(db: Database, form: dict[str, str]) -> Response:
        role = _role(form.get("role", ""))
        created = create_user(db, form.get("name", ""), form.get("password", ""), role)
        audit(db, caller.name, "user-created", detail=f"{created.name} as {role}")
        return _back("created")

    return await _form_action(request, action)


@router.post("/admin/users/{name}/role", response_class=HTMLResponse, responses=responses(303, 400))
async def role_form(request: Request, name: str, caller: Admin) -> Response:
    """Change a user's role."""

    async def action(db: Database, form: dict[str, str]) -> Response:
        _not_self(caller, name, "change the role of")
        role = _role(form.get("role", ""))
        set_role(db, name, role)
        audit(db, caller.name, "role-changed", detail=f"{name} is now {role}")
        return _back("role")

    return await _form_action(request, action)


@router.post(
    "/admin/users/{name}/disable", response_class=HTMLResponse, responses=responses(303, 400)
)
async def disable_form(request: Request, name: str, caller: Admin) -> Response:
    """Disable a user (its sessions end, its tokens stop working)."""

    async def action(db: Database, _form: dict[str, str]) -> Response:
        _not_self(caller, name, "disable")
        set_disabled(db, name, True)
        audit(db, caller.name, "user-disabled", detail=name)
        return _back("disabled")

    return await _form_action(request, action)


@router.post(
    "/admin/users/{name}/enable", response_class=HTMLResponse, responses=responses(303, 400)
)
async def enable_form(request: Request, name: str, caller: Admin) -> Response:
    """Enable a disabled user again."""

    async def action(db: Database, _form: dict[str, str]) -> Response:
        set_disabled(db, name, False)
        audit(db, caller.name, "user-enabled", detail=name)
        return _back("enabled")

    return await _form_action(request, action)


@router.post("/admin/users/{name}/password", response_class=HTMLResponse, responses=responses(400))
async def reset_password_form(request: Request, name: str, caller: Admin) -> Response:
    """Give a user a new random password (shown once), ending its lockout and sessions."""

    async def action(db: Database, _form: dict[str, str]) -> Response:
        password = secrets.token_urlsafe(12)
        set_password(db, name, password)
        audit(db, caller.name, "password-reset", detail=name)
        return _secret_page(request, "Password reset", f"The new password of {name}", password)

    return await _form_action(request, action)


@router.post("/admin/tokens", response_class=HTMLResponse, responses=responses(400))
async def create_token_form(request: Request, caller: Admin) -> Response:
    """Create an API token for a user (shown once)."""

    async def action(db: Database, form: dict[str, str]) -> Response:
        user, label = form.get("user", ""), form.get("label", "").strip() or "cli"
        token = create_token(db, user, label)
        audit(db, caller.name, "token-issued", detail=f"{label!r} for {user}")
        return _secret_page(request, "API token created", f"The token {label!r} of {user}", token)

    return await _form_action(request, action)


@router.post(
    "/admin/tokens/{token_id}/revoke", response_class=HTMLResponse, responses=responses(303, 400)
)
async def revoke_token_form(request: Request, token_id: RowId, caller: Admin) -> Response:
    """Revoke an API token."""

    async def action(db: Database, _form: dict[str, str]) -> Response:
        revoked = revoke_token_id(db, token_id)
        audit(db, caller.name, "token-revoked", detail=f"{revoked.label!r} of {revoked.user}")
        return _back("revoked")

    return await _form_action(request, action)


# -- JSON API ----------------------------------------------------------------------------


class NewUser(BaseModel):
    """A user to create; without a password a random one is made and answered once."""

    name: str = Field(min_length=1, max_length=64)
    role: Role = Role.TECHNICIAN
    password: str | None = None


class NewToken(BaseModel):
    """An API token to create for ``user``."""

    user: str = Field(min_length=1, max_length=64)
    label: str = Field(default="cli", max_length=64)


def _time(moment: datetime | None) -> str | None:
    return utc(moment).isoformat() if moment else None


def _user_json(state: UserState) -> dict[str, Any]:
    return {
        "name": state.principal.name,
        "role": str(state.principal.role),
        "disabled": state.disabled,
        "locked_until": _time(state.locked_until if state.locked else None),
    }


def _token_json(token: TokenInfo) -> dict[str, Any]:
    return {
        "id": token.id,
        "user": token.user,
        "label": token.label,
        "created_at": _time(token.created_at),
        "last_used_at": _time(token.last_used_at),
        "revoked": token.revoked,
    }


def _refused(error: ConfigError) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=400)


@router.get("/api/admin/users")
async def api_users(request: Request, _caller: Admin) -> dict[str, Any]:
    """Every user."""
    return {"users": [_user_json(s) for s in user_states(database(request))]}


@router.post("/api/admin/users", status_code=201, response_model=None, responses=responses(400))
async def api_create_user(
    request: Request, body: NewUser, caller: Admin
) -> dict[str, Any] | JSONResponse:
    """Create a user; answers the password once when it was generated."""
    db = database(request)
    password = body.password or secrets.token_urlsafe(12)
    try:
        created = create_user(db, body.name, password, body.role)
    except ConfigError as error:
        return _refused(error)
    audit(db, caller.name, "user-created", detail=f"{created.name} as {body.role}")
    answer: dict[str, Any] = {"name": created.name, "role": str(created.role)}
    if body.password is None:
        answer["password"] = password
    return answer


@router.get("/api/admin/tokens")
async def api_tokens(request: Request, _caller: Admin) -> dict[str, Any]:
    """Every API token (never its secret)."""
    return {"tokens": [_token_json(t) for t in list_tokens(database(request))]}


@router.post("/api/admin/tokens", status_code=201, response_model=None, responses=responses(400))
async def api_create_token(
    request: Request, body: NewToken, caller: Admin
) -> dict[str, Any] | JSONResponse:
    """Create an API token; the answer is the only time its secret is shown."""
    db = database(request)
    try:
        token = create_token(db, body.user, body.label)
    except ConfigError as error:
        return _refused(error)
    audit(db, caller.name, "token-issued", detail=f"{body.label!r} for {body.user}")
    return {"user": body.user, "label": body.label, "token": token}


@router.delete("/api/admin/tokens/{token_id}", response_model=None, responses=responses(404))
async def api_revoke_token(
    request: Request, token_id: RowId, caller: Admin
) -> dict[str, Any] | JSONResponse:
    """Revoke an API token."""
    db = database(request)
    try:
        revoked = revoke_token_id(db, token_id)
    except ConfigError as error:
        return JSONResponse({"detail": str(error)}, status_code=404)
    audit(db, caller.name, "token-revoked", detail=f"{revoked.label!r} of {revoked.user}")
    return _token_json(revoked)


@router.get("/api/admin/audit")
async def api_audit(
    request: Request, _caller: Admin, vin: str = "", user: str = "", limit: int = 200
) -> dict[str, Any]:
    """The audit log, newest first."""
    entries = audit_entries(database(request), vin=vin, user=user, limit=max(1, min(limit, 1000)))
    return {
        "entries": [
            {
                "at": _time(e.at),
                "user": e.user,
                "action": e.action,
                "vin": e.vin,
                "detail": e.detail,
            }
            for e in entries
        ]
    }


@router.get("/api/openapi.json", include_in_schema=False)
async def openapi(request: Request, _caller: Viewer) -> dict[str, Any]:
    """The API's OpenAPI schema, for logged-in users and token holders."""
    schema: dict[str, Any] = request.app.openapi()
    return schema
