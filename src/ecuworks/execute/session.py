"""The main job as the CLI, the demo and the web UI run it: identify, plan, execute, resume.

Each function opens its own link from a VCI URL, so that a confirmation prompt can sit
between planning and executing, and the vehicle is identified again right before anything
is written (the plan's fingerprint must still match).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from ecuworks.errors import PDataMismatch, Refused
from ecuworks.execute.journal import Journal, SessionRecord
from ecuworks.execute.progress import ProgressCallback, ignore
from ecuworks.execute.report import Report
from ecuworks.execute.reservation import hold_vci
from ecuworks.execute.runner import RunOptions, run_plan
from ecuworks.pdata.catalog import Catalog
from ecuworks.pdata.source import PData
from ecuworks.plan.build import build_plan
from ecuworks.plan.filter import PlanFilter
from ecuworks.plan.model import Plan
from ecuworks.transport.base import Link
from ecuworks.transport.url import open_link, parse_vci_url
from ecuworks.vehicle import GATEWAY_CANDIDATES, Identification, identify
from ecuworks.vehicle.identify import find_gateway, read_vehicle_order
from ecuworks.wire.vo import VehicleOrder

__all__ = [
    "JOURNAL_FILE",
    "Planned",
    "apply_plan",
    "expected_ecus",
    "identify_vehicle",
    "make_plan",
    "plan_job",
    "resume_session",
]

JOURNAL_FILE: Final = "journal.sqlite3"
# Seconds a client waits for an answer over a shared D-CAN (see for_link).
_CAN_WAIT_S: Final = 2.0


def expected_ecus(
    pdata: PData, series: str, vo: VehicleOrder | None = None
) -> tuple[dict[int, str], set[int]]:
    """Names of the series' ECUs by address, and those a vehicle should have.

    ECUs that only a retrofit installs are named, and expected only when the vehicle order
    holds the retrofit's option (the part was fitted, at the factory or by the retrofit
    that added the option); a series without P-Data expects nothing.
    """
    try:
        catalog = pdata.catalog.catalog(series)
    except PDataMismatch:
        return {}, set()
    names = {ecu.address: ecu.name for ecu in catalog.ecus}
    fitted: set[int] = set()
    not_fitted: set[int] = set()
    for retrofit in catalog.retrofits:
        has_it = vo is not None and vo.has(retrofit.option)
        for table in retrofit.install:
            if "address" in table:
                address = int(table["address"])
                (fitted if has_it else not_fitted).add(address)
                names.setdefault(address, str(table.get("name", "")))
    return names, ({ecu.address for ecu in catalog.ecus} | fitted) - (not_fitted - fitted)


async def identify_vehicle(
    link: Link,
    pdata: PData,
    *,
    gateway: int | None = None,
    timeout: float = 2.0,
    also: Iterable[int] = (),
) -> Identification:
    """Identify with the ECUs P-Data expects for the vehicle's series, and ``also`` these
    (a plan's ECUs, a retrofit's parts just fitted): an expected ECU that the vehicle-wide
    read misses is read again physically, so a late answer does not drop it.

    When the series has retrofits, the vehicle order is read first: a part whose option
    it holds is expected too.
    """
    candidates = GATEWAY_CANDIDATES if gateway is None else (gateway,)
    found, triple = await find_gateway(link, candidates=candidates, timeout=timeout / 2)
    expected: set[int] = set(also)
    if triple is not None:
        series = triple.current.series
        vo = None
        if series in pdata.catalog.series and pdata.catalog.retrofits(series):
            vo = await read_vehicle_order(link, found, timeout / 2)
        expected |= expected_ecus(pdata, series, vo)[1]
    return await identify(link, gateway=found, expected=expected, timeout=timeout)


@dataclass(frozen=True, slots=True)
class Planned:
    """A plan and the identification it was made from."""

    plan: Plan
    ident: Identification


async def make_plan(
    vci: str,
    pdata: PData,
    *,
    target: str = "latest",
    plan_filter: PlanFilter | None = None,
    gateway: int | None = None,
) -> Planned:
    """Identify the vehicle behind ``vci`` and plan it to ``target``."""
    async with open_link(vci) as link:
        ident = await identify_vehicle(link, pdata, gateway=gateway)
    plan = build_plan(ident, pdata.catalog, target=target, plan_filter=plan_filter)
    return Planned(plan, ident)


async def plan_job(
    vci: str,
    pdata: PData,
    build: Callable[[Identification, Catalog], Plan],
    *,
    gateway: int | None = None,
) -> Planned:
    """Identify the vehicle behind ``vci`` and make a job's plan with ``build`` (with the
    ECUs its ``expects`` names, when it has that attribute, expected to answer)."""
    also: Iterable[int] = getattr(build, "expects", ())
    async with open_link(vci) as link:
        ident = await identify_vehicle(link, pdata, gateway=gateway, also=also)
    return Planned(build(ident, pdata.catalog), ident)


async def apply_plan(
    vci: str,
    plan: Plan,
    pdata: PData,
    home: Path,
    *,
    options: RunOptions | None = None,
    progress: ProgressCallback = ignore,
) -> Report:
    """Reserve the VCI, identify again, check the plan still fits, and execute it."""
    opts = for_link(vci, options)
    with Journal.open(home / JOURNAL_FILE) as journal:
        async with hold_vci(opts.reservation, progress), open_link(vci) as link:
            also = {action.ecu for action in plan.actions}
            ident = await identify_vehicle(link, pdata, gateway=plan.gateway, also=also)
            return await run_plan(
                link, plan, pdata, journal, ident, options=opts, progress=progress
            )


def for_link(vci: str, options: RunOptions | None) -> RunOptions:
    """Options adjusted to the tester link: on CAN every ECU shares the one D-CAN.

    Through a VCI's D-CAN every request and answer queues behind the other ECUs' transfers
    on the same 500 kbit/s bus, so answers may come later than an ECU's P2server promises;
    the client waits longer there instead of taking a late answer for the next one's.
    """
    opts = options or RunOptions()
    if parse_vci_url(vci).scheme != "can":
        return opts
    timing = replace(
        opts.timing,
        p2=max(opts.timing.p2, _CAN_WAIT_S),
        margin=max(opts.timing.margin, _CAN_WAIT_S),
    )
    return replace(opts, timing=timing)


def unfinished(home: Path, vin: str | None = None) -> SessionRecord | None:
    """The journal's unfinished session (of that VIN), if any."""
    with Journal.open(home / JOURNAL_FILE) as journal:
        return journal.unfinished(vin)


async def resume_session(
    vci: str,
    pdata: PData,
    home: Path,
    *,
    options: RunOptions | None = None,
    progress: ProgressCallback = ignore,
) -> Report:
    """Continue the unfinished session of the connected vehicle from its journal.

    Raises:
        Refused: ``check="journal"``: no unfinished session for this vehicle.
    """
    opts = for_link(vci, options)
    with Journal.open(home / JOURNAL_FILE) as journal:
        async with hold_vci(opts.reservation, progress), open_link(vci) as link:
            ident = await identify_vehicle(link, pdata)
            session = journal.unfinished(ident.vin)
            if session is None:
                raise Refused(
                    f"the journal has no unfinished session for VIN {ident.vin}; "
                    "nothing to resume (use 'ecuworks program' to start one)",
                    check="journal",
                )
            plan = Plan.from_bytes(session.plan_json.encode(), "journal plan")
            return await run_plan(
                link,
                plan,
                pdata,
                journal,
                ident,
                options=opts,
                progress=progress,
                resume=session,
            )
