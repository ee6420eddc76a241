"""Retrofit and replacement: the two wizards around a part.

Retrofit: ``/retrofit`` picks an interface and identifies; ``/retrofit/{found}`` lists the
retrofits the car's P-Data offers (those its vehicle order has already shown as done);
``/retrofit/{found}/{option}`` says how to install each part, and "check and plan" makes
the plan only once every new part answers. Replacement: ``/replacement`` identifies;
``/replacement/{found}`` picks the ECU to swap and plans. Both plans open on the generic
plan page (``/programming/plans/{id}``) and run like programming; a replacement's run shows
the swap as the technician's step and waits for it. A viewer looks, a technician acts.

The JSON API does the same for scripts: ``POST /api/retrofit/check`` (409 with the parts
that do not answer) and ``POST /api/replacement/plan``; runs start through
``POST /api/programming/runs``.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from ecuworks.errors import AccessDenied, ConfigError, EcuworksError, PDataMismatch
from ecuworks.execute.jobs import (
    Part,
    check_retrofit,
    missing_parts,
    parts_of,
    replace_builder,
    retrofit_builder,
    series_of,
)
from ecuworks.execute.session import identify_vehicle
from ecuworks.pdata.model import Retrofit
from ecuworks.platform.users import Role
from ecuworks.transport.url import open_link
from ecuworks.vehicle.identify import EcuMode
from ecuworks.web.auth import Caller, form_data, require
from ecuworks.web.pages import render
from ecuworks.web.responses import responses
from ecuworks.web.runs import Identified
from ecuworks.web.workshop import (
    identify_on,
    interface,
    interfaces,
    keep_plan,
    manager,
    settings,
    vehicle_problem,
)

__all__ = ["router"]

router = APIRouter()
Viewer = Annotated[Caller, Depends(require(Role.VIEWER))]
Technician = Annotated[Caller, Depends(require(Role.TECHNICIAN))]


class RetrofitBody(BaseModel):
    """``POST /api/retrofit/check``: the option's parts are installed; check and plan."""

    interface: str
    option: str


class ReplacementBody(BaseModel):
    """``POST /api/replacement/plan``: the ECU to replace, by name or address."""

    interface: str
    ecu: str


# -- the work, shared by pages and API -------------------------------------------------


def _problem(error: EcuworksError) -> tuple[str, int]:
    """What to say and the status: 400 for an option or ECU the P-Data or VO rule out,
    502 for a vehicle that did not answer as it should."""
    if isinstance(error, (PDataMismatch, ConfigError)):
        return str(error), 400
    return vehicle_problem(error), 502


def _option(text: str) -> str:
    """``610`` or ``$610`` as ``$610``."""
    text = text.strip()
    return text if text.startswith("$") else f"${text}"


def _missing_text(retrofit: Retrofit, missing: list[Part]) -> str:
    names = ", ".join(f"the {p.name} (0x{p.address:02X}, bus {p.bus})" for p in missing)
    return (
        f"{retrofit.name}: {names} {'does' if len(missing) == 1 else 'do'} not answer yet; "
        "check that each is installed, its connector is plugged in and it has supply, then "
        "check again. Nothing was written."
    )


def _missing_json(retrofit: Retrofit, missing: list[Part]) -> list[dict[str, Any]]:
    return [
        {"name": p.name, "address": p.address, "bus": p.bus, "instruction": p.instruction(retrofit)}
        for p in missing
    ]


def _entry(request: Request, found: str) -> Identified:
    entry = manager(request).identified.get(found)
    if entry is None:
        raise AccessDenied("this identification is no longer kept; identify again", status=404)
    return entry


async def _retrofit(request: Request, entry: Identified, option: str) -> Retrofit:
    """The retrofit of ``option`` for the identified car (not done yet)."""
    pdata = await manager(request).pdata()
    return check_retrofit(entry.ident, pdata.catalog, option)


async def _missing(request: Request, name: str, retrofit: Retrofit) -> list[Part]:
    async with open_link(interface(request, name).vci_url) as link:
        return await missing_parts(link, retrofit)


def _plan_json(request: Request, plan_id: str) -> JSONResponse:
    planned = manager(request).plans.get(plan_id)
    assert planned is not None  # just kept
    return JSONResponse({"id": plan_id, "plan": planned.plan.to_json()})


# -- both wizards: pick an interface and identify --------------------------------------


def _launcher(
    request: Request, wizard: str, error: str | None = None, status: int = 200
) -> Response:
    context = {"interfaces": list(interfaces(request).values()), "error": error}
    return render(request, f"{wizard}.html", context, status=status)


@router.get("/retrofit", response_class=HTMLResponse)
async def retrofit_launcher(request: Request, _caller: Viewer) -> Response:
    """Pick an interface and identify the vehicle to retrofit."""
    return _launcher(request, "retrofit")


@router.get("/replacement", response_class=HTMLResponse)
async def replacement_launcher(request: Request, _caller: Viewer) -> Response:
    """Pick an interface and identify the vehicle whose ECU is to be replaced."""
    return _launcher(request, "replacement")


@router.post("/retrofit/identify", response_class=HTMLResponse, responses=responses(303, 404, 502))
async def retrofit_identify(request: Request, caller: Technician) -> Response:
    """Identify, then show the retrofits offered (303)."""
    return await _identify_form(request, caller, "retrofit")


@router.post(
    "/replacement/identify", response_class=HTMLResponse, responses=responses(303, 404, 502)
)
async def replacement_identify(request: Request, caller: Technician) -> Response:
    """Identify, then show the ECUs that may be replaced (303)."""
    return await _identify_form(request, caller, "replacement")


async def _identify_form(request: Request, caller: Caller, wizard: str) -> Response:
    name = (await form_data(request)).get("interface", "")
    try:
        found = await identify_on(request, caller, name)
    except AccessDenied:
        raise
    except EcuworksError as error:
        return _launcher(request, wizard, vehicle_problem(error), status=502)
    return RedirectResponse(f"/{wizard}/{found}", status_code=303)


# -- retrofit --------------------------------------------------------------------------


@router.get("/retrofit/{found}", response_class=HTMLResponse, responses=responses(400, 404, 502))
async def retrofit_offers(request: Request, found: str, _caller: Viewer) -> Response:
    """The retrofits the car's P-Data offers; those in its vehicle order shown as done."""
    return await _offers(request, found)


async def _offers(
    request: Request, found: str, error: str | None = None, status: int = 200
) -> Response:
    entry = _entry(request, found)
    ident = entry.ident
    offered: list[tuple[Retrofit, bool]] = []
    try:
        catalog = (await manager(request).pdata()).catalog
        offered = [
            (r, ident.vo is not None and ident.vo.has(r.option))
            for r in catalog.retrofits(series_of(ident))
        ]
    except EcuworksError as problem:
        error, status = _problem(problem)
    context = {"found": found, "entry": entry, "offered": offered, "error": error}
    return render(request, "retrofit_offers.html", context, status=status)


@router.post(
    "/retrofit/{found}/choose", response_class=HTMLResponse, responses=responses(303, 400, 404, 502)
)
async def retrofit_choose(request: Request, found: str, _caller: Technician) -> Response:
    """Choose a retrofit (form field ``option``), then show its installation steps (303)."""
    option = _option((await form_data(request)).get("option", ""))
    try:
        await _retrofit(request, _entry(request, found), option)
    except AccessDenied:
        raise
    except EcuworksError as error:
        return await _offers(request, found, *_problem(error))
    return RedirectResponse(f"/retrofit/{found}/{quote(option, safe='')}", status_code=303)


@router.get(
    "/retrofit/{found}/{option}", response_class=HTMLResponse, responses=responses(400, 404, 502)
)
async def retrofit_steps(request: Request, found: str, option: str, _caller: Viewer) -> Response:
    """How to install the retrofit's parts, and "check and plan"."""
    entry = _entry(request, found)
    try:
        retrofit = await _retrofit(request, entry, _option(option))
    except AccessDenied:
        raise
    except EcuworksError as error:
        return await _offers(request, found, *_problem(error))
    return _steps(request, found, entry, retrofit)


def _steps(
    request: Request,
    found: str,
    entry: Identified,
    retrofit: Retrofit,
    *,
    missing: list[Part] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    context = {
        "found": found,
        "entry": entry,
        "retrofit": retrofit,
        "parts": parts_of(retrofit),
        "missing": missing or [],
        "error": error,
    }
    return render(request, "retrofit_steps.html", context, status=status)


@router.post(
    "/retrofit/{found}/{option}/check",
    response_class=HTMLResponse,
    responses=responses(303, 400, 404, 409, 502),
)
async def retrofit_check(request: Request, found: str, option: str, caller: Technician) -> Response:
    """Every part answers: plan, and show the plan (303); else the steps again (409)."""
    entry = _entry(request, found)
    code = _option(option)
    try:
        retrofit = await _retrofit(request, entry, code)
    except AccessDenied:
        raise
    except EcuworksError as error:
        return await _offers(request, found, *_problem(error))
    try:
        missing = await _missing(request, entry.interface, retrofit)
        if missing:
            text = f"Not every part of {retrofit.name} answers yet. Nothing was written."
            return _steps(request, found, entry, retrofit, missing=missing, error=text, status=409)
        plan_id = await keep_plan(
            request, caller, entry.interface, retrofit_builder(code, parts_of(retrofit))
        )
    except AccessDenied:
        raise
    except EcuworksError as error:
        text, status = _problem(error)
        return _steps(request, found, entry, retrofit, error=text, status=status)
    return RedirectResponse(f"/programming/plans/{plan_id}", status_code=303)


# -- replacement -----------------------------------------------------------------------


@router.get("/replacement/{found}", response_class=HTMLResponse, responses=responses(404))
async def replacement_ecus(request: Request, found: str, _caller: Viewer) -> Response:
    """The car's ECUs that answer in their application: pick the one to replace."""
    return _ecus(request, found)


def _ecus(request: Request, found: str, error: str | None = None, status: int = 200) -> Response:
    entry = _entry(request, found)
    answering = [
        (f"0x{e.address:02X}", entry.names[e.address])
        for e in entry.ident.ecus
        if e.state is EcuMode.APPLICATION and e.address in entry.names
    ]
    context = {
        "found": found,
        "entry": entry,
        "answering": answering,
        "wait_s": settings(request).hardware_wait_s,
        "error": error,
    }
    return render(request, "replacement_ecus.html", context, status=status)


@router.post(
    "/replacement/{found}/plan",
    response_class=HTMLResponse,
    responses=responses(303, 400, 404, 502),
)
async def replacement_plan(request: Request, found: str, caller: Technician) -> Response:
    """Plan the replacement of the ECU chosen (form field ``ecu``), then show it (303)."""
    entry = _entry(request, found)
    ecu = (await form_data(request)).get("ecu", "")
    try:
        plan_id = await keep_plan(request, caller, entry.interface, replace_builder(ecu))
    except AccessDenied:
        raise
    except EcuworksError as error:
        return _ecus(request, found, *_problem(error))
    return RedirectResponse(f"/programming/plans/{plan_id}", status_code=303)


# -- JSON API --------------------------------------------------------------------------


@router.post("/api/retrofit/check", responses=responses(400, 404, 409, 502))
async def api_retrofit_check(request: Request, body: RetrofitBody, caller: Technician) -> Response:
    """Check the retrofit's parts answer and plan it: ``{id, plan}``; 409 with ``missing``."""
    code = _option(body.option)
    vehicle = interface(request, body.interface)
    try:
        pdata = await manager(request).pdata()
        async with open_link(vehicle.vci_url) as link:
            ident = await identify_vehicle(link, pdata)
            retrofit = check_retrofit(ident, pdata.catalog, code)
            missing = await missing_parts(link, retrofit)
        if missing:
            return JSONResponse(
                {
                    "detail": _missing_text(retrofit, missing),
                    "missing": _missing_json(retrofit, missing),
                },
                status_code=409,
            )
        plan_id = await keep_plan(
            request, caller, vehicle.name, retrofit_builder(code, parts_of(retrofit))
        )
    except AccessDenied:
        raise
    except EcuworksError as error:
        text, status = _problem(error)
        return JSONResponse({"detail": text}, status_code=status)
    return _plan_json(request, plan_id)


@router.post("/api/replacement/plan", responses=responses(400, 404, 502))
async def api_replacement_plan(
    request: Request, body: ReplacementBody, caller: Technician
) -> Response:
    """Plan the replacement of one ECU: ``{id, plan}``."""
    try:
        plan_id = await keep_plan(request, caller, body.interface, replace_builder(body.ecu))
    except AccessDenied:
        raise
    except EcuworksError as error:
        text, status = _problem(error)
        return JSONResponse({"detail": text}, status_code=status)
    return _plan_json(request, plan_id)
