"""The interface manager: known VCIs with their status, reservations, discovery.

Reservations are made on the VCI itself under ``user@workstation``
(:func:`~ecuworks.platform.interfaces.reservation_owner`); every reserve and release, and
every refusal of one, goes into the audit log.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ecuworks.errors import ConfigError, InterfaceReserved, LinkError
from ecuworks.platform import interfaces as manager
from ecuworks.platform.interfaces import Discovery, InterfaceStatus, KnownInterface
from ecuworks.platform.users import Role, audit
from ecuworks.web.auth import Caller, database, form_data, require
from ecuworks.web.pages import render
from ecuworks.web.params import RowId
from ecuworks.web.responses import responses
from ecuworks.web.settings import WebSettings

__all__ = ["router"]

router = APIRouter()

_PAGE: Final = "/interfaces"
_DEFAULT_HOST: Final = "127.0.0.1"
_DEFAULT_PORT: Final = 13400
Action = Literal["reserve", "release"]

Viewer = Annotated[Caller, Depends(require(Role.VIEWER))]
Technician = Annotated[Caller, Depends(require(Role.TECHNICIAN))]
Admin = Annotated[Caller, Depends(require(Role.ADMIN))]


class _Failed(Exception):
    """An action refused or failed: the message for the person and the HTTP status."""

    def __init__(self, message: str, status: int, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


def _owner(request: Request, caller: Caller) -> str:
    settings: WebSettings = request.app.state.settings
    return manager.reservation_owner(caller.name, settings.workstation)


async def _statuses(request: Request) -> list[InterfaceStatus]:
    known = manager.list_interfaces(database(request))
    return list(await asyncio.gather(*(manager.status(i) for i in known)))


async def _page(
    request: Request,
    *,
    error: str | None = None,
    discovery: Discovery | None = None,
    host: str = _DEFAULT_HOST,
    port: str = str(_DEFAULT_PORT),
    status: int = 200,
) -> Response:
    caller: Caller = request.state.caller
    return render(
        request,
        "interfaces.html",
        {
            "statuses": await _statuses(request),
            "error": error,
            "discovery": discovery,
            "host": host,
            "port": port,
            "can_reserve": caller.role.allows(Role.TECHNICIAN),
            "can_admin": caller.role.allows(Role.ADMIN),
        },
        status=status,
    )


def _interface(request: Request, interface_id: int) -> KnownInterface:
    found = manager.get_interface(database(request), interface_id)
    if found is None:
        raise _Failed(f"no interface with id {interface_id}; it may have been removed", 404)
    return found


async def _act(
    request: Request, caller: Caller, interface_id: int, action: Action
) -> dict[str, Any]:
    """Reserve or release on the VCI, audit it, and say what came of it."""
    interface = _interface(request, interface_id)
    owner = _owner(request, caller)
    db = database(request)
    try:
        if action == "reserve":
            left = await manager.reserve(interface, owner)
            result: dict[str, Any] = {"owner": owner, "expires_in": left}
        else:
            result = {"owner": owner, "released": await manager.release(interface, owner)}
    except InterfaceReserved as busy:
        audit(db, caller.name, f"vci-{action}-refused", detail=f"{interface.name}: {busy}")
        raise _Failed(str(busy), 409, owner=busy.owner, expires_in=busy.expires_in) from busy
    except ConfigError as exc:
        raise _Failed(str(exc), 400) from exc
    except LinkError as exc:
        raise _Failed(str(exc), 502) from exc
    audit(db, caller.name, f"vci-{action}", detail=f"{interface.name} as {owner}")
    return {"interface": interface.name, **result}


def _as_json(status: InterfaceStatus) -> dict[str, Any]:
    known = status.interface
    return {
        "id": known.id,
        "name": known.name,
        "vci_url": known.vci_url,
        "admin_url": known.admin_url,
        "state": status.state,
        "owner": status.owner,
        "lease_left": status.lease_left,
        "firmware": status.firmware,
        "vin": status.vin,
        "battery_volts": status.battery_volts,
        "reason": status.reason,
    }


@router.get(_PAGE, response_class=HTMLResponse)
async def interfaces_page(request: Request, _caller: Viewer) -> Response:
    """Every known interface with its status."""
    return await _page(request)


@router.get(f"{_PAGE}/discover", response_class=HTMLResponse, responses=responses(400))
async def discover_page(
    request: Request,
    _caller: Technician,
    host: str = _DEFAULT_HOST,
    port: str = str(_DEFAULT_PORT),
) -> Response:
    """Ask one address by DoIP unicast which vehicles answer."""
    if not port.isdigit() or not 0 < int(port) <= 0xFFFF:
        return await _page(
            request,
            error=f"the port is a number 1-65535, got {port!r}",
            host=host,
            port=port,
            status=400,
        )
    found = await manager.discover([(host.strip(), int(port))])
    return await _page(request, discovery=found, host=host, port=port)


@router.post(_PAGE, response_class=HTMLResponse, responses=responses(303, 400))
async def add(request: Request, caller: Admin) -> Response:
    """Make an interface known (from the form or from a discovered vehicle)."""
    fields = await form_data(request)
    try:
        added = manager.add_interface(
            database(request),
            fields.get("name", ""),
            fields.get("vci_url", ""),
            fields.get("admin_url") or None,
        )
    except ConfigError as exc:
        return await _page(request, error=str(exc), status=400)
    audit(database(request), caller.name, "interface-add", detail=f"{added.name} {added.vci_url}")
    return RedirectResponse(_PAGE, status_code=303)


@router.post(
    f"{_PAGE}/{{interface_id}}/remove", response_class=HTMLResponse, responses=responses(303, 404)
)
async def remove(request: Request, caller: Admin, interface_id: RowId) -> Response:
    """Forget an interface."""
    removed = manager.remove_interface(database(request), interface_id)
    if removed is None:
        return await _page(request, error=f"no interface with id {interface_id}", status=404)
    audit(database(request), caller.name, "interface-remove", detail=removed.name)
    return RedirectResponse(_PAGE, status_code=303)


async def _page_action(
    request: Request, caller: Caller, interface_id: int, action: Action
) -> Response:
    try:
        await _act(request, caller, interface_id, action)
    except _Failed as failed:
        return await _page(request, error=str(failed), status=failed.status)
    return RedirectResponse(_PAGE, status_code=303)


@router.post(
    f"{_PAGE}/{{interface_id}}/reserve",
    response_class=HTMLResponse,
    responses=responses(303, 400, 404, 409, 502),
)
async def reserve_form(request: Request, caller: Technician, interface_id: RowId) -> Response:
    """Reserve the interface for ``user@workstation``; back to the list."""
    return await _page_action(request, caller, interface_id, "reserve")


@router.post(
    f"{_PAGE}/{{interface_id}}/release",
    response_class=HTMLResponse,
    responses=responses(303, 400, 404, 409, 502),
)
async def release_form(request: Request, caller: Technician, interface_id: RowId) -> Response:
    """Release the interface; back to the list."""
    return await _page_action(request, caller, interface_id, "release")


@router.get("/api/interfaces")
async def api_list(request: Request, _caller: Viewer) -> list[dict[str, Any]]:
    """Every known interface with its status."""
    return [_as_json(s) for s in await _statuses(request)]


async def _api_action(
    request: Request, caller: Caller, interface_id: int, action: Action
) -> Response:
    try:
        return JSONResponse(await _act(request, caller, interface_id, action))
    except _Failed as failed:
        return JSONResponse({"detail": str(failed), **failed.extra}, status_code=failed.status)


@router.post("/api/interfaces/{interface_id}/reserve", responses=responses(400, 404, 409, 502))
async def api_reserve(request: Request, caller: Technician, interface_id: RowId) -> Response:
    """Reserve: 200 ``{"owner", "expires_in"}``, or 409 ``{"detail", "owner", "expires_in"}``."""
    return await _api_action(request, caller, interface_id, "reserve")


@router.post("/api/interfaces/{interface_id}/release", responses=responses(400, 404, 409, 502))
async def api_release(request: Request, caller: Technician, interface_id: RowId) -> Response:
    """Release: 200 ``{"owner", "released"}``, or 409 when another owner holds it."""
    return await _api_action(request, caller, interface_id, "release")
