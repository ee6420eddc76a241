"""Plans for the jobs beside programming: VO coding, expert coding, enabling, retrofit and
module replacement. Pure, like :func:`~ecuworks.plan.build.build_plan`, and assembled by the
same code, so every job is scheduled, journaled, executed and resumed the same way.

* **code**: ``CdDeploy`` on every answering ECU with a coding layout (or the ones named):
  every parameter from the VO's coding rules; the SVT stays as it is.
* **expert-coding**: one ``CdDeploy`` whose :attr:`Action.parameters` name the one
  parameter to set; its reason says whether that contradicts the VO.
* **enable**: ``FscDeploy`` per application: the code is obtained while executing.
* **retrofit**: with the new part installed and answering: ``HwInstall`` (it answers),
  its software to target, its coding, the coding of every ECU whose values the option
  changes, its enabling codes, and the VO with the option written to the gateway.
* **replace**: ``IdBackup`` of the old part, ``HwInstall`` (the swap, detected while
  executing), every application unit flashed (a new part holds only its bootloader),
  coding, enabling codes restored from the backup, ``IdRestore``.
* **diag**: no ECU action; the fault memory of every answering ECU cleared, read again,
  and the final check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ecuworks.errors import ConfigError
from ecuworks.pdata.catalog import Catalog
from ecuworks.pdata.model import EcuInfo
from ecuworks.plan.build import EcuPlan, Vehicle, assemble, ecu_info, plan_ecu, vehicle_for
from ecuworks.plan.model import Action, Category, Plan, Step, UnknownEcu
from ecuworks.plan.schedule import coding_seconds, default_bus
from ecuworks.plan.steps import steps_for
from ecuworks.vehicle.identify import EcuMode, EcuState, Identification
from ecuworks.wire.ilevel import ILevel
from ecuworks.wire.sgbm import ProcessClass
from ecuworks.wire.vo import VehicleOrder

__all__ = [
    "build_clear_plan",
    "build_coding_plan",
    "build_enable_plan",
    "build_expert_plan",
    "build_replace_plan",
    "build_retrofit_plan",
]

# Estimates of the actions that move no flash (seconds).
_BACKUP_S = 2.0
_FSC_S = 1.0
_HARDWARE_S = 60.0  # a technician's swap; the plan cannot know


def _final_check(reason: str) -> Step:
    return Step(name="final-check", phase="finish", reason=reason)


def _level(ident: Identification) -> ILevel:
    if ident.ilevel is None or ident.vo is None:
        raise ConfigError(
            f"the gateway 0x{ident.gateway:02X} gave no I-level or vehicle order; identify "
            "again with the gateway answering in its application"
        )
    return ident.ilevel.current


def _answering(ident: Identification, address: int, catalog: Catalog, series: str) -> EcuState:
    ecu = next((e for e in ident.ecus if e.address == address), None)
    name = _name(catalog, series, address)
    if ecu is None or ecu.state is EcuMode.NOT_ANSWERING:
        raise ConfigError(f"{name} does not answer: check its supply and wiring, then try again")
    if ecu.state is EcuMode.BOOTLOADER:
        raise ConfigError(
            f"{name} is in its bootloader (incomplete software): program it first with "
            "'ecuworks program'"
        )
    return ecu


def _name(catalog: Catalog, series: str, address: int) -> str:
    info = ecu_info(catalog, series, address)
    return f"{info.name} (0x{address:02X})" if info else f"the ECU at 0x{address:02X}"


def _info(catalog: Catalog, series: str, address: int) -> EcuInfo:
    info = ecu_info(catalog, series, address)
    if info is None:
        raise ConfigError(f"P-Data of series {series} has no ECU at 0x{address:02X}")
    return info


def _as_is(vehicle: Vehicle, ecu: EcuState, info: EcuInfo, actions: list[Action]) -> EcuPlan:
    """An ECU whose SVK the job leaves as it is."""
    bus = vehicle.catalog.bus(vehicle.series, info.bus) or default_bus(info.bus)
    return EcuPlan(info=info, bus=bus, target=list(ecu.svk), actions=actions, units={})


def _part_action(info: EcuInfo, category: Category, reason: str, seconds: float) -> Action:
    """An action that moves no unit: a backup, a hardware step, a code, a restore."""
    return Action(
        ecu=info.address,
        ecu_name=info.name,
        category=category,
        unit=None,
        reason=reason,
        seconds=seconds,
    )


def _coding_action(info: EcuInfo, ecu: EcuState, reason: str) -> Action:
    cafd = next((str(u) for u in ecu.svk if u.process_class is ProcessClass.CAFD), None)
    return Action(
        ecu=info.address,
        ecu_name=info.name,
        category=Category.CD_DEPLOY,
        unit=cafd,
        replaces=cafd,
        reason=reason,
        bytes=sum(r.length for r in info.coding.records),
        seconds=round(coding_seconds(info), 3),
    )


def build_coding_plan(
    ident: Identification, catalog: Catalog, *, ecus: Sequence[int] | None = None
) -> Plan:
    """VO coding of every answering ECU with a coding layout, or of ``ecus`` only.

    Raises:
        ConfigError: a named ECU that does not answer, is unknown or has no coding.
    """
    level = _level(ident)
    assert ident.vo is not None
    vehicle = vehicle_for(ident, catalog, level, ident.vo)
    wanted = None if ecus is None else set(ecus)
    planned: dict[int, EcuPlan] = {}
    unknown: list[UnknownEcu] = []
    for address in sorted(wanted) if wanted is not None else [e.address for e in ident.ecus]:
        if wanted is not None:
            ecu = _answering(ident, address, catalog, vehicle.series)
        else:
            found = next(e for e in ident.ecus if e.address == address)
            if found.state is not EcuMode.APPLICATION:
                unknown.append(UnknownEcu(ecu=address, why=f"{found.state}: not coded"))
                continue
            ecu = found
        info = ecu_info(catalog, vehicle.series, address)
        if info is None or not info.coding.records:
            if wanted is not None:
                raise ConfigError(f"{_name(catalog, vehicle.series, address)} has no coding")
            continue
        values = catalog.coding_values(vehicle.series, address, ident.vo)
        reason = f"code for the vehicle order: {len(values)} parameter(s) from the CAFD rules"
        planned[address] = _as_is(vehicle, ecu, info, [_coding_action(info, ecu, reason)])
    kept = [a for p in planned.values() for a in p.actions]
    steps = (_final_check("identify again: every SVK as before, coding read back"),)
    return assemble(ident, vehicle, planned, kept, steps, unknown=unknown, job="code")


def build_clear_plan(ident: Identification, catalog: Catalog) -> Plan:
    """Clear the fault memory of every ECU that answers, then read it again."""
    level = _level(ident)
    assert ident.vo is not None
    vehicle = vehicle_for(ident, catalog, level, ident.vo)
    steps = (
        Step(
            name="clear-fault-memory",
            phase="finish",
            reason="clear the fault memory of every ECU that answers (14 FFFFFF), each confirming",
        ),
        Step(
            name="read-dtcs",
            phase="finish",
            reason="read the fault memory again: a fault still present comes back at once",
        ),
        _final_check("identify again: every SVK as before"),
    )
    return assemble(ident, vehicle, {}, [], steps, job="diag")


def build_expert_plan(
    ident: Identification,
    catalog: Catalog,
    *,
    ecu: int,
    parameter: str,
    value: str,
    vo_value: str | None,
) -> Plan:
    """Set one coding parameter by hand, leaving the rest of the coding as it is.

    Raises:
        ConfigError: the ECU does not answer, or has no such parameter or value.
    """
    level = _level(ident)
    assert ident.vo is not None
    vehicle = vehicle_for(ident, catalog, level, ident.vo)
    state = _answering(ident, ecu, catalog, vehicle.series)
    info = _info(catalog, vehicle.series, ecu)
    known = {p.name: p for p in info.coding.parameters}
    if parameter not in known:
        raise ConfigError(
            f"{info.name} has no coding parameter {parameter!r} (has: {', '.join(known)})"
        )
    if value not in known[parameter].values:
        raise ConfigError(
            f"{info.name}.{parameter} has no value {value!r} "
            f"(has: {', '.join(known[parameter].values)})"
        )
    reason = f"expert coding: {parameter} = {value}"
    if vo_value is None:
        reason += "; the vehicle order has no rule for it"
    elif vo_value != value:
        reason += f"; contradicts the vehicle order, which gives {vo_value}"
    else:
        reason += "; agrees with the vehicle order"
    action = replace(_coding_action(info, state, reason), parameters={parameter: value})
    planned = {ecu: _as_is(vehicle, state, info, [action])}
    steps = (_final_check("identify again: every SVK as before"),)
    return assemble(ident, vehicle, planned, [action], steps, job="expert-coding")


def build_enable_plan(ident: Identification, catalog: Catalog, *, apps: Sequence[int]) -> Plan:
    """Obtain and write the enabling codes of ``apps``.

    Raises:
        ConfigError: an application P-Data does not list, or whose ECU does not answer.
    """
    level = _level(ident)
    assert ident.vo is not None
    vehicle = vehicle_for(ident, catalog, level, ident.vo)
    planned: dict[int, EcuPlan] = {}
    for action in _fsc_actions(catalog, vehicle.series, apps):
        if action.ecu not in planned:
            state = _answering(ident, action.ecu, catalog, vehicle.series)
            info = _info(catalog, vehicle.series, action.ecu)
            planned[action.ecu] = _as_is(vehicle, state, info, [])
        planned[action.ecu].actions.append(action)
    kept = [a for p in planned.values() for a in p.actions]
    steps = (_final_check("identify again: every SVK as before"),)
    return assemble(ident, vehicle, planned, kept, steps, job="enable")


def _fsc_actions(catalog: Catalog, series: str, apps: Sequence[int]) -> list[Action]:
    offered = {a.app_id: a for a in catalog.fsc(series)}
    actions = []
    for app_id in apps:
        app = offered.get(app_id)
        if app is None:
            listed = ", ".join(f"0x{a:04X} {o.name}" for a, o in sorted(offered.items()))
            raise ConfigError(
                f"P-Data of series {series} has no enabling application 0x{app_id:04X} "
                f"(has: {listed or 'none'})"
            )
        reason = (
            f"enabling code for {app.name} (0x{app.app_id:04X}), upgrade index {app.upgrade_index}"
        )
        action = _part_action(
            _info(catalog, series, app.address), Category.FSC_DEPLOY, reason, _FSC_S
        )
        actions.append(replace(action, app_id=app.app_id))
    return actions


def build_retrofit_plan(ident: Identification, catalog: Catalog, *, option: str) -> Plan:
    """Integrate the installed part of a retrofit and add ``option`` to the VO.

    The part must be installed and answering already (the CLI guides the technician and
    waits for it before identifying).

    Raises:
        ConfigError: the option is in the VO already, or its part does not answer.
        PDataMismatch: P-Data has no retrofit for the option.
    """
    level = _level(ident)
    assert ident.vo is not None
    series = level.series
    retrofit = catalog.retrofit(series, option)
    if ident.vo.has(retrofit.option):
        raise ConfigError(f"the vehicle order has {retrofit.option} already: nothing to retrofit")
    new_vo = ident.vo.with_option(retrofit.option)
    vehicle = vehicle_for(ident, catalog, level, new_vo)
    installed = [int(t["address"]) for t in retrofit.install]
    planned: dict[int, EcuPlan] = {}
    for address in dict.fromkeys([*installed, *retrofit.program]):
        state = _answering(ident, address, catalog, series)
        result = plan_ecu(vehicle, state)
        if isinstance(result, UnknownEcu):
            raise ConfigError(f"{_name(catalog, series, address)}: {result.why}")
        planned[address] = result
        info = result.info
        if address in installed:
            reason = f"{retrofit.name}: the installed {info.name} answers at 0x{address:02X}"
            result.actions.insert(0, _part_action(info, Category.HW_INSTALL, reason, 1.0))
    for address in _recoded(
        ident, catalog, series, new_vo, listed=retrofit.code, installed=installed
    ):
        if any(a.category is Category.CD_DEPLOY for a in _actions(planned, address)):
            continue
        state = _answering(ident, address, catalog, series)
        info = _info(catalog, series, address)
        reason = f"its coding depends on {retrofit.option} ({retrofit.name})"
        action = _coding_action(info, state, reason)
        if address in planned:
            planned[address].actions.append(action)
        else:
            planned[address] = _as_is(vehicle, state, info, [action])
    for action in _fsc_actions(catalog, series, retrofit.enable):
        if action.ecu not in planned:
            state = _answering(ident, action.ecu, catalog, series)
            planned[action.ecu] = _as_is(vehicle, state, _info(catalog, series, action.ecu), [])
        planned[action.ecu].actions.append(action)
    kept = _ordered(planned)
    flashing = any(a.flashes for a in kept)
    steps = (
        steps_for(True, level, level)
        if flashing
        else tuple(s for s in steps_for(True, level, level) if s.phase == "finish")
    )
    return assemble(ident, vehicle, planned, kept, steps, job="retrofit")


def _actions(planned: dict[int, EcuPlan], address: int) -> list[Action]:
    return planned[address].actions if address in planned else []


def _recoded(
    ident: Identification,
    catalog: Catalog,
    series: str,
    new_vo: VehicleOrder,
    *,
    listed: Sequence[int],
    installed: Sequence[int],
) -> list[int]:
    """ECUs whose coding the option changes, those the retrofit lists, and the new part."""
    assert ident.vo is not None
    out = [*installed, *listed]
    for ecu in ident.ecus:
        if ecu.state is not EcuMode.APPLICATION:
            continue
        before = catalog.coding_values(series, ecu.address, ident.vo)
        if before != catalog.coding_values(series, ecu.address, new_vo):
            out.append(ecu.address)
    return list(dict.fromkeys(out))


def _ordered(planned: dict[int, EcuPlan]) -> list[Action]:
    order = {c: i for i, c in enumerate(Category)}
    out = []
    for ecu_plan in planned.values():
        out += sorted(ecu_plan.actions, key=lambda a: order[a.category])
    return out


def build_replace_plan(ident: Identification, catalog: Catalog, *, ecu: int) -> Plan:
    """Back up the ECU, have it swapped, and bring the new part to where the old one was.

    Raises:
        ConfigError: the ECU does not answer (its data could not be backed up) or is the
            gateway (it carries the link to every other ECU).
    """
    level = _level(ident)
    assert ident.vo is not None
    series = level.series
    if ecu == ident.gateway:
        raise ConfigError(
            "the gateway cannot be replaced this way: every request to the other ECUs passes "
            "through it"
        )
    vehicle = vehicle_for(ident, catalog, level, ident.vo)
    state = _answering(ident, ecu, catalog, series)
    # A new part holds only its bootloader: plan it as an ECU found in its bootloader.
    result = plan_ecu(vehicle, replace(state, state=EcuMode.BOOTLOADER))
    if isinstance(result, UnknownEcu):
        raise ConfigError(f"{_name(catalog, series, ecu)}: {result.why}")
    info = result.info
    label = f"{info.name} (0x{ecu:02X})"
    new_part = [
        replace(a, reason=a.reason.replace("ECU is in its bootloader", "a new part"))
        for a in result.actions
    ]
    if not any(a.category is Category.CD_DEPLOY for a in new_part):
        new_part.append(_coding_action(info, state, "code the new part for the vehicle order"))
    dids = ", ".join(f"{d:04X}" for d in info.individual_data) or "none listed"
    backup = f"back up the old part's individual data (DIDs {dids}) and enabling codes"
    swap = f"swap the {label} for a new part; it is detected when it answers"
    actions = [
        _part_action(info, Category.ID_BACKUP, backup, _BACKUP_S),
        _part_action(info, Category.HW_INSTALL, swap, _HARDWARE_S),
        *new_part,
    ]
    if any(a.address == ecu for a in catalog.fsc(series)):
        restore = "restore the enabling codes backed up from the old part"
        actions.append(_part_action(info, Category.FSC_DEPLOY, restore, _FSC_S))
    if info.individual_data:
        restore = f"restore the individual data backed up (DIDs {dids})"
        actions.append(_part_action(info, Category.ID_RESTORE, restore, _BACKUP_S))
    result.actions[:] = actions
    planned = {ecu: result}
    return assemble(
        ident, vehicle, planned, _ordered(planned), steps_for(True, level, level), job="replace"
    )
