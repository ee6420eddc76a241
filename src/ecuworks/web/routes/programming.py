"""Programming: identify a vehicle, make its measures plan, program it, watch it live.

Pages (a technician acts, a viewer looks): ``/programming`` picks an interface and
identifies; ``/programming/identified/{id}`` shows the vehicle and makes a plan;
``/programming/plans/{id}`` is the measures plan with "Start programming" (refused
unless the caller holds the interface's reservation); ``/programming/runs/{id}`` shows
the session live, by server-sent events from ``/programming/runs/{id}/events`` (and a
``<meta refresh>`` without JavaScript). The JSON API under ``/api/programming`` does the
same for scripts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from pydantic import BaseModel

from ecuworks.errors import AccessDenied, ConfigError, EcuworksError
from ecuworks.platform.users import Role, audit
from ecuworks.web.auth import Caller, database, form_data, require
from ecuworks.web.pages import render, templates
from ecuworks.web.responses import responses
from ecuworks.web.runs import Run, Started
from ecuworks.web.workshop import (
    check_reserved,
    identify_on,
    interface,
    interfaces,
    keep_plan,
    manager,
    run_options,
    settings,
    vehicle_problem,
)

__all__ = ["router"]

router = APIRouter()
Viewer = Annotated[Caller, Depends(require(Role.VIEWER))]
Technician = Annotated[Caller, Depends(require(Role.TECHNICIAN))]
_CONTROLS = ("pause", "resume", "abort")


class IdentifyBody(BaseModel):
    """``POST /api/programming/identify``."""

    interface: str


class PlanBody(BaseModel):
    """``POST /api/programming/plan``."""

    interface: str
    target: str = "latest"


class StartBody(BaseModel):
    """``POST /api/programming/runs``: ``confirm_warning`` goes on despite the plan's
    warning (an expert coding against the vehicle order)."""

    plan: str
    confirm_warning: bool = False


# -- the work, shared by pages and API -------------------------------------------------


async def _start(request: Request, caller: Caller, plan_id: str, *, confirmed: bool) -> Run:
    """Start the plan ``plan_id`` on the caller's reserved interface.

    Raises:
        AccessDenied: 404 for an unknown plan; 409 when the interface is not reserved, or
            the plan has a warning not ``confirmed``.
    """
    runs = manager(request)
    planned = runs.plans.get(plan_id)
    if planned is None:
        raise AccessDenied("this plan is no longer kept; make the plan again", status=404)
    if planned.warning and not confirmed:
        raise AccessDenied(
            f"{planned.warning}. Confirm the warning to go on; nothing was written.", status=409
        )
    vehicle = interface(request, planned.interface)
    config = settings(request)
    await check_reserved(vehicle, caller, config.workstation)
    run = runs.start(
        planned.plan,
        plan_id,
        user=caller.name,
        interface=vehicle.name,
        how=Started(
            vci_url=vehicle.vci_url,
            options=run_options(vehicle, caller, config),
            workstation=config.workstation,
        ),
    )
    audit(
        database(request),
        caller.name,
        f"{planned.plan.job}-start",
        vin=planned.plan.vin,
        detail=f"to {planned.plan.target_ilevel} via {vehicle.name}"
        + (f"; warned: {planned.warning}" if planned.warning else ""),
    )
    return run


def _status(error: EcuworksError) -> int:
    """400 for a request the data rules out (a target that is no I-level of the car), 502
    for a vehicle that did not answer as it should."""
    return 400 if isinstance(error, ConfigError) else 502


def _run(request: Request, run_id: str) -> Run:
    run = manager(request).runs.get(run_id)
    if run is None:
        raise AccessDenied(f"there is no programming session {run_id!r}", status=404)
    return run


def _control(run: Run, caller: Caller, what: str) -> None:
    if what not in _CONTROLS:
        raise AccessDenied(f"unknown control {what!r}: pause, resume or abort", status=404)
    getattr(run.control, what)(caller.name)


# -- pages -----------------------------------------------------------------------------


@router.get("/programming", response_class=HTMLResponse)
async def programming_page(request: Request, _caller: Viewer) -> Response:
    """Pick an interface and identify; the sessions started here."""
    return _launcher(request)


def _launcher(request: Request, error: str | None = None, status: int = 200) -> Response:
    runs = manager(request).runs.items()
    return render(
        request,
        "programming.html",
        {"interfaces": list(interfaces(request).values()), "runs": runs, "error": error},
        status=status,
    )


@router.post(
    "/programming/identify", response_class=HTMLResponse, responses=responses(303, 400, 404, 502)
)
async def identify_form(request: Request, caller: Technician) -> Response:
    """Identify the vehicle on the chosen interface, then show it (303)."""
    name = (await form_data(request)).get("interface", "")
    try:
        found = await identify_on(request, caller, name)
    except EcuworksError as error:
        if isinstance(error, AccessDenied):
            raise
        return _launcher(request, vehicle_problem(error), status=_status(error))
    return RedirectResponse(f"/programming/identified/{found}", status_code=303)


@router.get(
    "/programming/identified/{found}", response_class=HTMLResponse, responses=responses(404)
)
async def identified_page(request: Request, found: str, _caller: Viewer) -> Response:
    """The identified vehicle: VIN, VO, I-levels, battery, ECUs; "Make plan"."""
    entry = manager(request).identified.get(found)
    if entry is None:
        raise AccessDenied("this identification is no longer kept; identify again", status=404)
    return render(request, "programming_identified.html", {"found": found, "entry": entry})


@router.post(
    "/programming/plan", response_class=HTMLResponse, responses=responses(303, 400, 404, 502)
)
async def plan_form(request: Request, caller: Technician) -> Response:
    """Make the measures plan (identifying again), then show it (303)."""
    fields = await form_data(request)
    try:
        plan_id = await keep_plan(
            request, caller, fields.get("interface", ""), fields.get("target", "")
        )
    except EcuworksError as error:
        if isinstance(error, AccessDenied):
            raise
        return _launcher(request, vehicle_problem(error), status=_status(error))
    return RedirectResponse(f"/programming/plans/{plan_id}", status_code=303)


@router.get("/programming/plans/{plan_id}", response_class=HTMLResponse, responses=responses(404))
async def plan_page(request: Request, plan_id: str, _caller: Viewer) -> Response:
    """The measures plan: actions, estimate and bound, critical path, schedule."""
    return _plan_page(request, plan_id)


def _plan_page(
    request: Request, plan_id: str, error: str | None = None, status: int = 200
) -> Response:
    planned = manager(request).plans.get(plan_id)
    if planned is None:
        raise AccessDenied("this plan is no longer kept; make the plan again", status=404)
    plan = planned.plan
    horizon = max([s.end_s for s in plan.schedule] + [plan.estimate_s, 1.0])
    return render(
        request,
        "programming_plan.html",
        {
            "plan_id": plan_id,
            "planned": planned,
            "plan": plan,
            "horizon": horizon,
            "names": {a.ecu: a.ecu_name for a in plan.actions},
            "error": error,
        },
        status=status,
    )


@router.post(
    "/programming/plans/{plan_id}/start",
    response_class=HTMLResponse,
    responses=responses(303, 404, 409),
)
async def start_form(request: Request, plan_id: str, caller: Technician) -> Response:
    """Start programming; refused (409) unless the caller holds the reservation."""
    confirmed = (await form_data(request)).get("confirm_warning") == "yes"
    try:
        run = await _start(request, caller, plan_id, confirmed=confirmed)
    except AccessDenied as error:
        if error.status != 409:
            raise
        return _plan_page(request, plan_id, str(error), status=409)
    return RedirectResponse(f"/programming/runs/{run.id}", status_code=303)


@router.get("/programming/runs/{run_id}", response_class=HTMLResponse, responses=responses(404))
async def run_page(request: Request, run_id: str, _caller: Viewer) -> Response:
    """The live status of a session."""
    return render(request, "programming_run.html", {"run": _run(request, run_id)})


@router.post(
    "/programming/runs/{run_id}/{what}", response_class=HTMLResponse, responses=responses(303, 404)
)
async def control_form(request: Request, run_id: str, what: str, caller: Technician) -> Response:
    """Pause, resume or abort at the next safe point."""
    run = _run(request, run_id)
    _control(run, caller, what)
    audit(database(request), caller.name, f"{run.plan.job}-{what}", vin=run.plan.vin)
    return RedirectResponse(f"/programming/runs/{run_id}", status_code=303)


@router.get("/programming/runs/{run_id}/events", responses=responses(404))
async def run_events(request: Request, run_id: str, _caller: Viewer) -> Response:
    """Server-sent events: the status fragment after each change, ``done`` at the end."""
    run = _run(request, run_id)
    runs = manager(request)
    fragment = templates.get_template("programming_run_status.html")

    async def stream() -> AsyncIterator[str]:
        async for state in runs.follow(run):
            html = fragment.render(run=state, csrf="", live=True)
            yield _sse("status", html)
            if state.recorded:
                yield _sse("done", "")

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"cache-control": "no-store"}
    )


def _sse(event: str, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {event}\n{lines}\n"


# -- JSON API --------------------------------------------------------------------------


@router.post("/api/programming/identify", responses=responses(400, 404, 502))
async def api_identify(request: Request, body: IdentifyBody, caller: Technician) -> Response:
    """Identify the vehicle on an interface."""
    try:
        found = await identify_on(request, caller, body.interface)
    except AccessDenied:
        raise
    except EcuworksError as error:
        return JSONResponse({"detail": vehicle_problem(error)}, status_code=_status(error))
    entry = manager(request).identified.get(found)
    assert entry is not None
    document = entry.ident.to_json()
    for ecu in document["ecus"]:
        ecu["name"] = entry.names.get(ecu["address"])
    return JSONResponse({"id": found, "identification": document, "targets": entry.targets})


@router.post("/api/programming/plan", responses=responses(400, 404, 502))
async def api_plan(request: Request, body: PlanBody, caller: Technician) -> Response:
    """Make a plan (kept by its id for ``/api/programming/runs``)."""
    try:
        plan_id = await keep_plan(request, caller, body.interface, body.target)
    except AccessDenied:
        raise
    except EcuworksError as error:
        return JSONResponse({"detail": vehicle_problem(error)}, status_code=_status(error))
    planned = manager(request).plans.get(plan_id)
    assert planned is not None
    return JSONResponse({"id": plan_id, "plan": planned.plan.to_json()})


@router.post("/api/programming/runs", status_code=202, responses=responses(400, 404, 409))
async def api_start(request: Request, body: StartBody, caller: Technician) -> dict[str, Any]:
    """Start programming a plan; 409 unless the caller holds the reservation."""
    run = await _start(request, caller, body.plan, confirmed=body.confirm_warning)
    return run.to_json()


@router.get("/api/programming/runs/{run_id}", responses=responses(404))
async def api_run(request: Request, run_id: str, _caller: Viewer) -> dict[str, Any]:
    """A session's state."""
    return _run(request, run_id).to_json()


@router.post("/api/programming/runs/{run_id}/{what}", responses=responses(404))
async def api_control(
    request: Request, run_id: str, what: str, caller: Technician
) -> dict[str, Any]:
    """Pause, resume or abort a session."""
    run = _run(request, run_id)
    _control(run, caller, what)
    audit(database(request), caller.name, f"{run.plan.job}-{what}", vin=run.plan.vin)
    return run.to_json()
