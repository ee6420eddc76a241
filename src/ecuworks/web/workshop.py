"""What the programming and diagnosis pages share: the interfaces, the run options, the
reservation check, and messages for a vehicle that does not answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fastapi import Request

from ecuworks.errors import (
    AccessDenied,
    ConfigError,
    EcuworksError,
    LinkError,
    ParseError,
    PDataMismatch,
    Refused,
    UdsError,
)
from ecuworks.execute.jobs import Builder
from ecuworks.execute.reservation import Reservation
from ecuworks.execute.runner import RunOptions
from ecuworks.execute.session import Planned as Made
from ecuworks.execute.session import expected_ecus, identify_vehicle, make_plan, plan_job
from ecuworks.platform.interfaces import DEFAULT_LEASE_S, list_interfaces, reservation_owner
from ecuworks.platform.recording import record_identify, record_plan
from ecuworks.platform.users import audit
from ecuworks.transport.url import open_link
from ecuworks.transport.vci import VciAdmin
from ecuworks.web.auth import Caller, database
from ecuworks.web.runs import Identified, Planned, RunManager
from ecuworks.web.settings import WebSettings

__all__ = [
    "NOT_RESERVED",
    "VehicleInterface",
    "check_reserved",
    "identify_on",
    "interface",
    "interfaces",
    "keep_plan",
    "manager",
    "run_options",
    "settings",
    "vehicle_problem",
]

NOT_RESERVED: Final = "reserve the interface first on the Interfaces page"


@dataclass(frozen=True, slots=True)
class VehicleInterface:
    """An interface a page may use: its name, vehicle link and management address."""

    name: str
    vci_url: str
    admin_url: str | None


def settings(request: Request) -> WebSettings:
    """The app's settings."""
    found: WebSettings = request.app.state.settings
    return found


def manager(request: Request) -> RunManager:
    """The app's run manager."""
    found: RunManager = request.app.state.runs
    return found


def interfaces(request: Request) -> dict[str, VehicleInterface]:
    """Every interface known, by name: the database's, then the configured ones."""
    found = {
        i.name: VehicleInterface(i.name, i.vci_url, i.admin_url)
        for i in list_interfaces(database(request))
    }
    for name, vci_url, admin_url in settings(request).interfaces:
        found.setdefault(name, VehicleInterface(name, vci_url, admin_url))
    return found


def interface(request: Request, name: str) -> VehicleInterface:
    """The interface called ``name``.

    Raises:
        AccessDenied: 404 when there is none.
    """
    found = interfaces(request).get(name)
    if found is None:
        raise AccessDenied(
            f"there is no interface called {name!r}; add it on the Interfaces page", status=404
        )
    return found


async def check_reserved(vehicle: VehicleInterface, caller: Caller, workstation: str) -> None:
    """Refuse unless ``caller`` holds the interface's reservation from this workstation.

    Raises:
        AccessDenied: 409 with :data:`NOT_RESERVED` (and who holds it, if someone does).
    """
    if vehicle.admin_url is None:
        return  # nothing to reserve: a bare adapter
    owner = reservation_owner(caller.name, workstation)
    try:
        async with VciAdmin(vehicle.admin_url) as admin:
            held = (await admin.info()).owner
    except (ConfigError, LinkError) as error:
        raise AccessDenied(
            f"{vehicle.name} does not answer ({error}); check it", status=409
        ) from error
    if held != owner:
        by = f" (it is reserved by {held})" if held else ""
        raise AccessDenied(f"{NOT_RESERVED}{by}", status=409)


def run_options(vehicle: VehicleInterface, caller: Caller, config: WebSettings) -> RunOptions:
    """Options for a session from the web UI, on the caller's reservation.

    The technician reserved the interface on the Interfaces page: the session renews that
    reservation and leaves it in place at its end, with a full lease. Tester present and
    the voltage poll follow the simulated vehicle's time scale (the ECUs' S3 timeout
    shrinks with it).
    """
    reservation = None
    if vehicle.admin_url is not None:
        owner = reservation_owner(caller.name, config.workstation)
        reservation = Reservation(
            url=vehicle.admin_url, owner=owner, lease_s=DEFAULT_LEASE_S, keep=True
        )
    scale = max(config.time_scale, 1.0)
    return RunOptions(
        tester_present_s=min(1.5, 1.0 / scale),
        voltage_poll_s=0.5 if scale == 1.0 else 0.2,
        reservation=reservation,
        fsc_source=config.fsc_source,
        issuer_key=config.issuer_key,
        hardware_wait_s=config.hardware_wait_s,
    )


def vehicle_problem(error: EcuworksError) -> str:
    """What to tell a technician when the vehicle or its data said no."""
    if isinstance(error, LinkError):
        return f"{error}. Is the vehicle interface connected? Nothing was written."
    if isinstance(error, (Refused, PDataMismatch, UdsError, ConfigError, ParseError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


async def keep_plan(
    request: Request,
    caller: Caller,
    name: str,
    build: Builder | str,
) -> str:
    """Identify the vehicle on interface ``name`` and plan a job on it; returns the plan's id.

    ``build`` is a job's plan builder (:mod:`ecuworks.execute.jobs`), or the target I-level
    of a programming plan (``latest`` or ``F030-24-07-570``). The plan is recorded in the
    vehicle history and kept to be started by its id (:class:`~ecuworks.web.runs.Planned`),
    with the builder's ``warning``, when it has one.
    """
    vehicle = interface(request, name)
    runs = manager(request)
    pdata = await runs.pdata()
    made: Made
    if isinstance(build, str):
        made = await make_plan(vehicle.vci_url, pdata, target=build or "latest")
    else:
        made = await plan_job(vehicle.vci_url, pdata, build)
    plan = made.plan
    db = database(request)
    record_plan(db, plan, user=caller.name, workstation=settings(request).workstation)
    detail = f"{plan.job} to {plan.target_ilevel} via {name}"
    audit(db, caller.name, "plan", vin=plan.vin, detail=detail)
    warning = getattr(build, "warning", None)  # an expert coding's, against the VO
    return runs.plans.add(Planned(interface=name, plan=plan, user=caller.name, warning=warning))


async def identify_on(request: Request, caller: Caller, name: str) -> str:
    """Identify the vehicle on interface ``name``, record it in the history and keep it
    (with its ECUs' names and the I-levels above its own); returns its id."""
    vehicle = interface(request, name)
    runs = manager(request)
    pdata = await runs.pdata()
    async with open_link(vehicle.vci_url) as link:
        ident = await identify_vehicle(link, pdata)
    names: dict[int, str] = {}
    targets: tuple[str, ...] = ()
    if ident.ilevel is not None:
        series = ident.ilevel.current.series
        names, _ = expected_ecus(pdata, series)
        if series in pdata.catalog.series:
            current = str(ident.ilevel.current)
            levels = [str(level) for level in pdata.catalog.ilevels(series)]
            targets = tuple(level for level in levels if level > current)
    db = database(request)
    record_identify(db, ident, user=caller.name, workstation=settings(request).workstation)
    audit(db, caller.name, "identify", vin=ident.vin, detail=f"via {name}")
    return runs.identified.add(
        Identified(interface=name, ident=ident, names=names, targets=targets)
    )
