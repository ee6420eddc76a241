"""Coding: VO coding of the vehicle's ECUs, and one parameter by hand (expert coding).

``/coding`` picks an interface; a technician asks there for a VO coding plan (every ECU
with coding, or those named) or reads one parameter (``/coding/read``): its value now,
the values it may take and what the vehicle order gives it, with a form to code another
value (``/coding/expert``). Both plans go to the generic plan page
``/programming/plans/{id}`` and run like every job, on the caller's reservation; an
expert value against the vehicle order must be confirmed there. A viewer sees why the
page has no forms for them. The JSON API under ``/api/coding`` does the same for scripts
(``cli/coding.py`` is the command line twin); runs start by ``/api/programming/runs``.

A wrong ECU, parameter or value answers 400 with the choices; a vehicle that does not
answer or refuses, 502. Nothing is written to the vehicle before the plan is started.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from ecuworks.errors import AccessDenied, ConfigError, EcuworksError
from ecuworks.execute.jobs import ExpertCoding, Reading, coding_builder, label, read_parameter
from ecuworks.platform.users import Role, audit
from ecuworks.web.auth import Caller, database, form_data, require
from ecuworks.web.pages import render
from ecuworks.web.responses import responses
from ecuworks.web.workshop import interface, interfaces, keep_plan, manager, vehicle_problem

__all__ = ["router"]

router = APIRouter()
Viewer = Annotated[Caller, Depends(require(Role.VIEWER))]
Technician = Annotated[Caller, Depends(require(Role.TECHNICIAN))]


class VoBody(BaseModel):
    """``POST /api/coding/vo``: no ``ecus``, every ECU with coding."""

    interface: str
    ecus: list[str] = []


class ReadBody(BaseModel):
    """``POST /api/coding/read``: an ECU (name or address) and one of its parameters."""

    interface: str
    ecu: str
    parameter: str


class ExpertBody(ReadBody):
    """``POST /api/coding/expert``: the value name to code."""

    value: str


# -- the work, shared by pages and API -------------------------------------------------


def _problem(error: EcuworksError) -> tuple[int, str]:
    """The status and message for ``error``: 400 for a wrong name, 502 for the vehicle.

    Raises:
        AccessDenied: ``error`` itself, for the app's handler.
    """
    if isinstance(error, AccessDenied):
        raise error
    if isinstance(error, ConfigError):
        return 400, f"{error}. Nothing was written."
    return 502, vehicle_problem(error)


def _names(text: str) -> list[str]:
    """ECU names or addresses as typed: separated by commas or spaces."""
    return [name for name in re.split(r"[\s,]+", text) if name]


async def _read(request: Request, caller: Caller, body: ReadBody) -> Reading:
    vehicle = interface(request, body.interface)
    pdata = await manager(request).pdata()
    reading = await read_parameter(vehicle.vci_url, pdata, body.ecu, body.parameter)
    now = reading.value or "no named value"
    detail = f"{label(reading.ecu)} {reading.parameter} = {now} via {vehicle.name}"
    audit(database(request), caller.name, "coding-read", vin=reading.vin, detail=detail)
    return reading


# -- pages -----------------------------------------------------------------------------


@router.get("/coding", response_class=HTMLResponse)
async def coding_page(request: Request, _caller: Viewer) -> Response:
    """Pick an interface: VO coding, or read a parameter to code it by hand."""
    return _page(request)


def _page(
    request: Request,
    error: str | None = None,
    status: int = 200,
    fields: dict[str, str] | None = None,
) -> Response:
    context = {
        "interfaces": list(interfaces(request).values()),
        "error": error,
        "fields": fields or {},
    }
    return render(request, "coding.html", context, status=status)


def _refused(request: Request, error: EcuworksError, fields: dict[str, str]) -> Response:
    """The coding page again, with what went wrong and the fields as typed."""
    status, message = _problem(error)
    return _page(request, message, status, fields)


@router.post("/coding/vo", response_class=HTMLResponse, responses=responses(303, 400, 404, 502))
async def vo_form(request: Request, caller: Technician) -> Response:
    """Plan the VO coding, then show the plan (303)."""
    fields = await form_data(request)
    build = coding_builder(_names(fields.get("ecus", "")))
    try:
        plan_id = await keep_plan(request, caller, fields.get("interface", ""), build)
    except EcuworksError as error:
        return _refused(request, error, fields)
    return RedirectResponse(f"/programming/plans/{plan_id}", status_code=303)


@router.post("/coding/read", response_class=HTMLResponse, responses=responses(400, 404, 502))
async def read_form(request: Request, caller: Technician) -> Response:
    """Read one parameter and show it, with a form to code another value."""
    fields = await form_data(request)
    body = ReadBody(
        interface=fields.get("interface", ""),
        ecu=fields.get("ecu", ""),
        parameter=fields.get("parameter", ""),
    )
    try:
        reading = await _read(request, caller, body)
    except EcuworksError as error:
        return _refused(request, error, fields)
    return render(request, "coding_read.html", {"reading": reading, "chosen": body.interface})


@router.post("/coding/expert", response_class=HTMLResponse, responses=responses(303, 400, 404, 502))
async def expert_form(request: Request, caller: Technician) -> Response:
    """Plan coding one parameter by hand, then show the plan and its warning (303)."""
    fields = await form_data(request)
    expert = ExpertCoding(
        ecu=fields.get("ecu", ""),
        parameter=fields.get("parameter", ""),
        value=fields.get("value", ""),
    )
    try:
        plan_id = await keep_plan(request, caller, fields.get("interface", ""), expert)
    except EcuworksError as error:
        return _refused(request, error, fields)
    return RedirectResponse(f"/programming/plans/{plan_id}", status_code=303)


# -- JSON API --------------------------------------------------------------------------


def _failed(error: EcuworksError) -> JSONResponse:
    status, message = _problem(error)
    return JSONResponse({"detail": message}, status_code=status)


def _planned(request: Request, plan_id: str) -> dict[str, Any]:
    planned = manager(request).plans.get(plan_id)
    assert planned is not None  # just kept
    return {"id": plan_id, "plan": planned.plan.to_json(), "warning": planned.warning}


@router.post("/api/coding/vo", responses=responses(400, 404, 502))
async def api_vo(request: Request, body: VoBody, caller: Technician) -> Response:
    """Plan the VO coding (started by ``/api/programming/runs``)."""
    try:
        plan_id = await keep_plan(request, caller, body.interface, coding_builder(body.ecus))
    except EcuworksError as error:
        return _failed(error)
    return JSONResponse(_planned(request, plan_id))


@router.post("/api/coding/read", responses=responses(400, 404, 502))
async def api_read(request: Request, body: ReadBody, caller: Technician) -> Response:
    """One parameter now, its values and the vehicle order's (``code get --json``)."""
    try:
        reading = await _read(request, caller, body)
    except EcuworksError as error:
        return _failed(error)
    return JSONResponse(reading.to_json())


@router.post("/api/coding/expert", responses=responses(400, 404, 502))
async def api_expert(request: Request, body: ExpertBody, caller: Technician) -> Response:
    """Plan coding one parameter; ``warning`` must be confirmed when the run starts."""
    expert = ExpertCoding(ecu=body.ecu, parameter=body.parameter, value=body.value)
    try:
        plan_id = await keep_plan(request, caller, body.interface, expert)
    except EcuworksError as error:
        return _failed(error)
    return JSONResponse(_planned(request, plan_id))
