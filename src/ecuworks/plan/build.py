"""Compute a measures plan from an identification and the P-Data. Pure: no I/O, no clock.

For every identified ECU, P-Data's target SVK for the target I-level (the KIS question:
series, I-level, variant, hardware, VO) is compared with the SVK read from the ECU:

* a bootloader (BTLD) not at target is a ``BlFlash``; any other flashable unit not at
  target a ``SwDeploy``; a CAFD not at target a ``CdDeploy``. An ECU that gets new
  software is coded again even if its CAFD is unchanged, as the trade does;
* an ECU found in its bootloader has incomplete software: its flash units are deployed
  again even where the SVK names the target version;
* an ECU P-Data does not know, whose hardware is not released for the target I-level, or
  that does not answer is reported in :attr:`Plan.unknown` and never guessed at.

Then the filter applies, the ECUs are scheduled (:mod:`ecuworks.plan.schedule`) and the
vehicle-wide steps are added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ecuworks.errors import ConfigError, ParseError, PDataMismatch
from ecuworks.pdata.catalog import Catalog
from ecuworks.pdata.model import BusInfo, EcuInfo
from ecuworks.plan.filter import PlanFilter
from ecuworks.plan.model import Action, Category, EcuSlot, Plan, Step, UnknownEcu
from ecuworks.plan.schedule import (
    STEP_ALLOWANCE_S,
    TESTER_LINK,
    EcuWork,
    UnitWork,
    coding_seconds,
    default_bus,
    flash_overhead_seconds,
    lower_bound,
    schedule,
    unit_work,
)
from ecuworks.plan.steps import critical_path, steps_for
from ecuworks.vehicle.identify import EcuMode, EcuState, Identification
from ecuworks.wire.ilevel import ILevel
from ecuworks.wire.sgbm import ProcessClass, SgbmId
from ecuworks.wire.vo import VehicleOrder

__all__ = ["EcuPlan", "Vehicle", "assemble", "build_plan", "ecu_info", "plan_ecu", "vehicle_for"]

_HARDWARE = frozenset({ProcessClass.HWEL, ProcessClass.HWAP, ProcessClass.HWFR})
# Actions whose estimated seconds add to an ECU's fixed time (no flash, no coding).
_SIDE_CATEGORIES = frozenset(
    {Category.ID_BACKUP, Category.HW_INSTALL, Category.FSC_DEPLOY, Category.ID_RESTORE}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Vehicle:
    """What every ECU's planning needs."""

    catalog: Catalog
    series: str
    target: ILevel
    vo: VehicleOrder
    link: BusInfo


@dataclass(slots=True, kw_only=True)
class EcuPlan:
    """One ECU's planned actions, their costs, and its target SVK."""

    info: EcuInfo
    bus: BusInfo
    target: list[SgbmId]
    actions: list[Action]
    units: dict[str, UnitWork]  # by the action's unit


def build_plan(
    ident: Identification,
    catalog: Catalog,
    *,
    target: str = "latest",
    plan_filter: PlanFilter | None = None,
) -> Plan:
    """Plan the measures that bring the identified vehicle to ``target``.

    Args:
        ident: the identification (VIN, VO, I-level triple, every ECU's SVK and state).
        catalog: verified P-Data.
        target: ``"latest"`` or an I-level of the vehicle's series.
        plan_filter: must / must-not rules; None allows everything.

    Returns:
        The plan, with its schedule, estimate and lower bound.

    Raises:
        ConfigError: no I-level or VO identified, a target that is not an I-level of the
            series or older than the vehicle's (downgrade), or a *must* rule unmet.
        PDataMismatch: P-Data has no catalog for the vehicle's series.
    """
    if ident.ilevel is None or ident.vo is None:
        missing = "I-level" if ident.ilevel is None else "vehicle order"
        raise ConfigError(
            f"the gateway 0x{ident.gateway:02X} gave no {missing}, so no target can be "
            "computed; identify again with the gateway answering in its application (a "
            "gateway in its bootloader must be recovered first)"
        )
    current = ident.ilevel.current
    level = _target_level(catalog, current.series, current, target)
    plan_filter = plan_filter or PlanFilter()
    vehicle = vehicle_for(ident, catalog, level, ident.vo)
    planned: dict[int, EcuPlan] = {}
    unknown: list[UnknownEcu] = []
    for ecu in ident.ecus:
        result = plan_ecu(vehicle, ecu)
        if isinstance(result, UnknownEcu):
            unknown.append(result)
        else:
            planned[ecu.address] = result
    every = [a for p in planned.values() for a in p.actions]
    labels = {a: f"{p.info.name} (0x{a:02X})" for a, p in planned.items()}
    kept, dropped = plan_filter.apply(every, labels)
    kept, dropped = _drop_orphan_coding(kept, dropped)
    return assemble(
        ident,
        vehicle,
        planned,
        kept,
        steps_for(bool(kept), level, current),
        unknown=unknown,
        dropped=dropped,
        plan_filter=plan_filter,
    )


def vehicle_for(
    ident: Identification, catalog: Catalog, level: ILevel, vo: VehicleOrder
) -> Vehicle:
    """What planning each ECU needs; the tester link is the gateway's bus on CAN cars."""
    assert ident.ilevel is not None
    series = ident.ilevel.current.series
    link = TESTER_LINK
    gateway_info = ecu_info(catalog, series, ident.gateway)
    if gateway_info is not None:
        gateway_bus = catalog.bus(series, gateway_info.bus) or default_bus(gateway_info.bus)
        link = gateway_bus if gateway_bus.kind in ("can", "canfd") else TESTER_LINK
    return Vehicle(catalog=catalog, series=series, target=level, vo=vo, link=link)


def assemble(
    ident: Identification,
    vehicle: Vehicle,
    planned: dict[int, EcuPlan],
    kept: Sequence[Action],
    steps: Sequence[Step],
    *,
    unknown: Sequence[UnknownEcu] = (),
    dropped: Sequence[Action] = (),
    plan_filter: PlanFilter | None = None,
    job: str = "program",
) -> Plan:
    """Schedule the kept actions and put the plan together (every job's last step)."""
    assert ident.ilevel is not None
    kept, dropped = tuple(kept), tuple(dropped)
    works = _works(planned, kept)
    timeline = schedule(works, ident.gateway, vehicle.link)
    terms = lower_bound(works, ident.gateway)
    slots = tuple(
        EcuSlot(
            ecu=address,
            bus=planned[address].bus.name,
            start_s=round(start, 3),
            end_s=round(end, 3),
            after=()
            if address == ident.gateway or ident.gateway not in timeline.slots
            else (ident.gateway,),
        )
        for address, (start, end) in sorted(timeline.slots.items(), key=lambda i: (i[1], i[0]))
    )
    estimate = timeline.makespan_s + sum(STEP_ALLOWANCE_S.get(s.name, 0.0) for s in steps)
    return Plan(
        vin=ident.vin,
        series=vehicle.series,
        vo=str(vehicle.vo),
        gateway=ident.gateway,
        actual_ilevel=str(ident.ilevel.current),
        target_ilevel=str(vehicle.target),
        vehicle_fingerprint=ident.fingerprint,
        actual_svt={a: tuple(units) for a, units in ident.svt.items()},
        target_svt=_target_svt(ident, planned, kept, dropped),
        actions=kept,
        steps=tuple(steps),
        schedule=slots,
        unknown=tuple(unknown),
        estimate_s=round(estimate, 3),
        lower_bound_s=round(max(terms.values(), default=0.0), 3),
        lower_bound_terms={k: round(v, 3) for k, v in terms.items()},
        critical_path=critical_path(works, timeline, ident.gateway),
        filter=(plan_filter or PlanFilter()).to_json(),
        filtered=dropped,
        job=job,
    )


def _target_level(catalog: Catalog, series: str, current: ILevel, target: str) -> ILevel:
    """The target I-level: ``latest`` or a released I-level not older than ``current``."""
    levels = catalog.ilevels(series)
    if target.strip().lower() == "latest":
        level = levels[-1]
    else:
        try:
            level = ILevel.parse(target.strip())
        except ParseError as exc:
            raise ConfigError(f"target: {exc}, or 'latest'") from exc
        if level.series != series:
            raise ConfigError(
                f"target {level} is of series {level.series}; the vehicle is {series}"
            )
        if level not in levels:
            raise ConfigError(
                f"target {level} is not an I-level of the P-Data; series {series} has "
                + ", ".join(str(v) for v in levels)
            )
    if level < current:
        raise ConfigError(
            f"target {level} is older than the vehicle's {current}: downgrade refused; "
            f"choose {current} or later"
        )
    return level


def ecu_info(catalog: Catalog, series: str, address: int) -> EcuInfo | None:
    try:
        return catalog.ecu(series, address)
    except PDataMismatch:
        return None


def _version(unit: SgbmId) -> str:
    return f"{unit.main:03d}.{unit.sub:03d}.{unit.patch:03d}"


def plan_ecu(vehicle: Vehicle, ecu: EcuState) -> EcuPlan | UnknownEcu:
    """Compare one ECU's SVK with its target; its actions, or why it cannot be planned."""
    here = f"0x{ecu.address:02X}"
    if ecu.state is EcuMode.NOT_ANSWERING:
        problem = f" ({ecu.problem})" if ecu.problem else ""
        return UnknownEcu(
            ecu=ecu.address,
            why=f"not answering{problem}: not planned; check its supply and wiring, then "
            "identify again",
        )
    catalog, series, level = vehicle.catalog, vehicle.series, vehicle.target
    info = ecu_info(catalog, series, ecu.address)
    if info is None:
        return UnknownEcu(
            ecu=ecu.address, why=f"P-Data of series {series} has no ECU at {here}: not planned"
        )
    hardware = next((u for u in ecu.svk if u.process_class is ProcessClass.HWEL), None)
    if hardware is None:
        why = "its SVK could not be read" if not ecu.svk else "its SVK names no hardware (HWEL)"
        return UnknownEcu(ecu=ecu.address, why=f"{why}, so its target is unknown: not planned")
    try:
        target = catalog.target_svk(series, level, info.variant, str(hardware), vehicle.vo)
    except PDataMismatch as exc:
        return UnknownEcu(
            ecu=ecu.address,
            why=f"hardware {hardware} is not released for {level} ({exc.detail}): not planned",
        )
    bus = catalog.bus(series, info.bus) or default_bus(info.bus)
    installed = {(u.process_class, u.unit_id): u for u in ecu.svk}
    in_bootloader = ecu.state is EcuMode.BOOTLOADER
    actions: list[Action] = []
    units: dict[str, UnitWork] = {}
    cafds: list[tuple[SgbmId, SgbmId | None]] = []
    for unit in target:
        old = installed.get((unit.process_class, unit.unit_id))
        if unit.process_class in _HARDWARE:
            continue
        if unit.process_class is ProcessClass.CAFD:
            cafds.append((unit, old))
            continue
        bootloader_redo = in_bootloader and unit.process_class is not ProcessClass.BTLD
        if old == unit and not bootloader_redo:
            continue
        try:
            image = catalog.unit(unit)
        except PDataMismatch:
            return UnknownEcu(
                ecu=ecu.address,
                why=f"P-Data lists {unit} for {level} but holds no image of it: not planned",
            )
        work = unit_work(info, bus, image, vehicle.link)
        units[str(unit)] = work
        reason = _flash_reason(unit, old, level)
        if bootloader_redo:
            reason = f"{reason}; ECU is in its bootloader: its software is incomplete"
        category = (
            Category.BL_FLASH if unit.process_class is ProcessClass.BTLD else Category.SW_DEPLOY
        )
        actions.append(
            Action(
                ecu=ecu.address,
                ecu_name=info.name,
                category=category,
                unit=str(unit),
                replaces=None if old is None else str(old),
                reason=reason,
                bytes=work.bytes,
                seconds=round(work.seconds, 3),
            )
        )
    actions += _coding_actions(info, cafds, level, actions)
    order = {c: i for i, c in enumerate(Category)}
    actions.sort(key=lambda a: order[a.category])  # stable: target order within each
    return EcuPlan(info=info, bus=bus, target=target, actions=actions, units=units)


def _coding_actions(
    info: EcuInfo,
    cafds: Sequence[tuple[SgbmId, SgbmId | None]],
    level: ILevel,
    flashing: Sequence[Action],
) -> list[Action]:
    """CdDeploy for each CAFD not at target, and for every CAFD after new software."""
    new_software = any(a.category is Category.SW_DEPLOY for a in flashing)
    coding_bytes = sum(r.length for r in info.coding.records)
    actions = []
    for unit, old in cafds:
        if old == unit and not new_software:
            continue
        if old == unit:
            reason = f"{unit} unchanged, but an ECU is coded again after new software"
        elif old is None:
            reason = f"{unit} is in the target SVK of {level} and not installed"
        else:
            reason = f"{_unit_name(unit)} {_version(old)} → {_version(unit)} for {level}"
        actions.append(
            Action(
                ecu=info.address,
                ecu_name=info.name,
                category=Category.CD_DEPLOY,
                unit=str(unit),
                replaces=None if old is None else str(old),
                reason=reason,
                bytes=coding_bytes,
                seconds=round(coding_seconds(info), 3),
            )
        )
    return actions


def _unit_name(unit: SgbmId) -> str:
    return f"{unit.process_class.name}-{unit.unit_id:08X}"


def _flash_reason(unit: SgbmId, old: SgbmId | None, level: ILevel) -> str:
    if old is None:
        return f"{unit} is in the target SVK of {level} and not installed"
    if old == unit:
        return f"{unit} is the target version for {level}"
    return f"{_unit_name(unit)} {_version(old)} → {_version(unit)} for {level}"


def _drop_orphan_coding(
    kept: Sequence[Action], dropped: Sequence[Action]
) -> tuple[tuple[Action, ...], tuple[Action, ...]]:
    """Coding that was only due to new software goes when the filter dropped the software."""
    with_software = {a.ecu for a in kept if a.category is Category.SW_DEPLOY}
    keep: list[Action] = []
    out = list(dropped)
    for action in kept:
        orphan = (
            action.category is Category.CD_DEPLOY
            and action.unit == action.replaces
            and action.ecu not in with_software
        )
        if orphan:
            reason = f"left out: the filter removed the new software it followed ({action.reason})"
            out.append(replace(action, reason=reason))
        else:
            keep.append(action)
    return tuple(keep), tuple(out)


def _works(planned: dict[int, EcuPlan], kept: Sequence[Action]) -> list[EcuWork]:
    """The schedule's view of every ECU with kept actions; the first flash action of an ECU
    carries its session overhead in its seconds, so an ECU's actions add up to it alone."""
    by_ecu: dict[int, list[Action]] = {}
    for action in kept:
        by_ecu.setdefault(action.ecu, []).append(action)
    works = []
    for address, ecu_plan in planned.items():
        mine = by_ecu.get(address)
        if not mine:
            continue
        info = ecu_plan.info
        units = tuple(ecu_plan.units[a.unit] for a in mine if a.flashes and a.unit)
        fixed = flash_overhead_seconds(info) if units else 0.0
        if any(a.category is Category.CD_DEPLOY for a in mine):
            fixed += coding_seconds(info)
        fixed += sum(a.seconds for a in mine if a.category in _SIDE_CATEGORIES)
        works.append(
            EcuWork(address=address, name=info.name, bus=ecu_plan.bus, units=units, fixed_s=fixed)
        )
    return works


def _target_svt(
    ident: Identification,
    planned: dict[int, EcuPlan],
    kept: Sequence[Action],
    dropped: Sequence[Action],
) -> dict[int, tuple[str, ...]]:
    """The SVT after the plan: targets where actions remain, what is installed elsewhere."""
    with_actions = {a.ecu for a in kept}
    svt: dict[int, tuple[str, ...]] = {}
    for ecu in ident.ecus:
        if ecu.address not in with_actions:
            if ecu.svk:
                svt[ecu.address] = tuple(str(u) for u in ecu.svk)
            continue
        units = [str(u) for u in planned[ecu.address].target]
        for action in dropped:
            if action.ecu == ecu.address and action.unit in units:
                i = units.index(action.unit)
                if action.replaces is not None:
                    units[i] = action.replaces
                else:
                    del units[i]
        svt[ecu.address] = tuple(units)
    return svt
