"""Diagnosis: read the fault memory of the vehicle on an interface, and clear it.

Reading is a look (a viewer may); clearing writes to every ECU, so a technician asks for
it, confirms on a second page that shows what will be cleared, and it runs as a plan of
job ``diag`` on the caller's reservation, journaled like every job (``cli/diag.py`` does
the same). The memory is read again afterwards: a fault still present comes back at once.
"""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from ecuworks.errors import AccessDenied, DatabaseError, EcuworksError
from ecuworks.execute.session import apply_plan, identify_vehicle
from ecuworks.plan.jobs import build_clear_plan
from ecuworks.platform.recording import record_dtc_read, record_session
from ecuworks.platform.users import Role, audit
from ecuworks.transport.url import open_link
from ecuworks.vehicle.dtc import FaultMemory, read_vehicle_fault_memory, readable, status_flags
from ecuworks.vehicle.identify import Identification
from ecuworks.web.auth import Caller, database, form_data, require
from ecuworks.web.pages import render
from ecuworks.web.responses import responses
from ecuworks.web.workshop import (
    VehicleInterface,
    check_reserved,
    interface,
    interfaces,
    manager,
    run_options,
    settings,
    vehicle_problem,
)

__all__ = ["router"]

router = APIRouter()
Viewer = Annotated[Caller, Depends(require(Role.VIEWER))]
Technician = Annotated[Caller, Depends(require(Role.TECHNICIAN))]


async def _read(request: Request, vehicle: VehicleInterface) -> tuple[Identification, FaultMemory]:
    pdata = await manager(request).pdata()
    async with open_link(vehicle.vci_url) as link:
        ident = await identify_vehicle(link, pdata)
        memory = await read_vehicle_fault_memory(link, ident, pdata.catalog)
    return ident, memory


def _page(request: Request, status: int = 200, **context: object) -> Response:
    values: dict[str, object] = {
        "interfaces": list(interfaces(request).values()),
        "chosen": None,
        "memory": None,
        "error": None,
        "cleared": None,
        "flags": status_flags,
        "readable": readable,
    }
    values.update(context)
    return render(request, "diagnosis.html", values, status=status)


@router.get("/diagnosis", response_class=HTMLResponse, responses=responses(404, 502))
async def diagnosis_page(
    request: Request,
    caller: Viewer,
    interface_name: Annotated[str | None, Query(alias="interface")] = None,
) -> Response:
    """Pick an interface; with ``?interface=NAME`` the vehicle's fault memory."""
    if not interface_name:
        return _page(request)
    vehicle = interface(request, interface_name)
    try:
        ident, memory = await _read(request, vehicle)
    except EcuworksError as error:
        if isinstance(error, AccessDenied):
            raise
        return _page(request, 502, chosen=vehicle.name, error=vehicle_problem(error))
    _record_read(request, caller, ident, memory)
    return _page(request, chosen=vehicle.name, memory=memory)


def _record_read(
    request: Request, caller: Caller, ident: Identification, memory: FaultMemory
) -> None:
    workstation = settings(request).workstation
    # The read itself is shown; a history that cannot be written is not worth failing it.
    with contextlib.suppress(DatabaseError):
        record_dtc_read(
            database(request), memory, vin=ident.vin, user=caller.name, workstation=workstation
        )


@router.post("/diagnosis/clear", response_class=HTMLResponse, responses=responses(404, 409, 502))
async def clear(request: Request, caller: Technician) -> Response:
    """Without ``confirm=yes``: what would be cleared, and a button to confirm. With it:
    clear, read again, and show the result."""
    fields = await form_data(request)
    vehicle = interface(request, fields.get("interface", ""))
    try:
        if fields.get("confirm") != "yes":
            _, memory = await _read(request, vehicle)
            return render(
                request,
                "diagnosis_confirm.html",
                {"chosen": vehicle.name, "memory": memory, "readable": readable},
            )
        await check_reserved(vehicle, caller, settings(request).workstation)
        return await _clear(request, caller, vehicle)
    except AccessDenied as error:
        if error.status != 409:
            raise
        return _page(request, 409, chosen=vehicle.name, error=str(error))
    except EcuworksError as error:
        return _page(request, 502, chosen=vehicle.name, error=vehicle_problem(error))


async def _clear(request: Request, caller: Caller, vehicle: VehicleInterface) -> Response:
    config = settings(request)
    runs = manager(request)
    pdata = await runs.pdata()
    ident, _ = await _read(request, vehicle)
    plan = build_clear_plan(ident, pdata.catalog)
    options = run_options(vehicle, caller, config)
    report = await apply_plan(vehicle.vci_url, plan, pdata, config.home, options=options)
    db = database(request)
    record_session(db, report, plan, user=caller.name, workstation=config.workstation)
    audit(db, caller.name, "diag-clear", vin=ident.vin, detail=f"via {vehicle.name}")
    _, after = await _read(request, vehicle)
    return _page(
        request,
        chosen=vehicle.name,
        memory=after,
        cleared={"targets": len(readable(after)), "refused": report.not_cleared},
    )
