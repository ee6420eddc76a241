"""``ecuworks code``: VO coding of the vehicle's ECUs, and expert coding of one parameter.

* ``ecuworks code --vci URL [--ecu NAME]...``: the P-Data's coding rules (CAFD) turn the
  vehicle order into parameter values, coded into each ECU's coding records, written in the
  coding session and read back. Every ECU with coding, or only those named.
* ``ecuworks code get ECU PARAM --vci URL``: what one parameter holds now, the values it
  may take, and what the vehicle order gives it. Read-only: nothing is journaled.
* ``ecuworks code set ECU PARAM VALUE --vci URL``: write one parameter, leaving the rest of
  the ECU's coding as it is, with a warning when the vehicle order gives another value (the
  next VO coding sets it back).

Writing runs as a plan through the session journal, as programming does: it is recorded,
and ``ecuworks resume`` finishes an interrupted one. ECUs are named as P-Data names them
(``HU``), or by diagnostic address (``0x63``).

Exit codes (DESIGN.md): 0 done; 2 usage (an unknown ECU, parameter or value; no terminal to
confirm and no ``--yes``); 3 refused before touching the vehicle; 4 failed while coding
(journal kept); 5 vehicle or interface not reachable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from ecuworks.cli.common import EXIT_USAGE, console, errors, fail
from ecuworks.cli.pdata import load_pdata
from ecuworks.cli.program import (
    AsJson,
    Battery,
    MinVolts,
    Owner,
    Parallel,
    TesterPresent,
    VciAdminUrl,
    Yes,
    _options,
    check_battery,
    confirm,
    execute_plan,
    run_guarded,
)
from ecuworks.coding.expert import (
    check_value,
    decode_value,
    find_parameter,
    parameter_values,
    read_records,
    vo_value,
)
from ecuworks.errors import ConfigError, PDataMismatch, Refused
from ecuworks.execute.session import for_link, identify_vehicle, plan_job
from ecuworks.pdata.catalog import Catalog
from ecuworks.pdata.model import EcuInfo
from ecuworks.pdata.source import PData
from ecuworks.plan.jobs import build_coding_plan, build_expert_plan
from ecuworks.plan.model import Plan
from ecuworks.plan.render import render_plan
from ecuworks.transport.url import open_link
from ecuworks.uds.client import UdsClient
from ecuworks.vehicle import Identification
from ecuworks.vehicle.identify import EcuMode

__all__ = ["code_app", "code_command", "get_command", "set_command"]

SCHEMA = 1

code_app = typer.Typer(
    name="code",
    help="Coding: VO coding of the ECUs (no subcommand), or one parameter by hand (get, set).",
)

EcuName = Annotated[str, typer.Argument(help="The ECU: its name (HU) or address (0x63).")]
Parameter = Annotated[str, typer.Argument(help="The coding parameter's name.")]
VciOption = Annotated[str, typer.Option(help="doip://HOST:PORT, hsfz://HOST:PORT or can://IF/CH")]


# -- resolving names against the P-Data of the identified vehicle ---------------------------


def _series(ident: Identification) -> str:
    """The vehicle's series, from the I-level its gateway holds."""
    if ident.ilevel is None:
        raise Refused(
            f"the gateway (0x{ident.gateway:02X}) gave no I-level, so the vehicle's series and "
            "its coding data are unknown; run 'ecuworks identify' and check the gateway",
            check="vehicle",
        )
    return ident.ilevel.current.series


def resolve_ecu(catalog: Catalog, series: str, name: str) -> EcuInfo:
    """The series' ECU called ``name`` (any case) or at address ``name`` (``0x63``).

    Raises:
        ConfigError: no such ECU; the message lists the series' ECUs.
    """
    key: int | str
    try:
        key = int(name, 0)
    except ValueError:
        key = name
    try:
        return catalog.ecu(series, key)
    except PDataMismatch:
        ecus = catalog.catalog(series).ecus
        for ecu in ecus:
            if isinstance(key, str) and ecu.name.casefold() == key.casefold():
                return ecu
        known = ", ".join(f"{e.name} (0x{e.address:02X})" for e in sorted(ecus, key=_name))
        raise ConfigError(f"series {series} has no ECU {name}; its ECUs are: {known}") from None


def _name(ecu: EcuInfo) -> str:
    return ecu.name


def _label(ecu: EcuInfo) -> str:
    return f"{ecu.name} (0x{ecu.address:02X})"


def _coded(ecu: EcuInfo) -> EcuInfo:
    """``ecu``, if P-Data describes its coding."""
    if not ecu.coding.records:
        raise ConfigError(f"{_label(ecu)} has no coding in the P-Data: there is nothing to code")
    return ecu


def _answering(ident: Identification, ecu: EcuInfo) -> None:
    """Refuse an ECU that is not running its application (no coding DIDs then)."""
    try:
        state = ident.ecu(ecu.address).state
    except KeyError:
        state = EcuMode.NOT_ANSWERING
    if state is EcuMode.APPLICATION:
        return
    advice = (
        "program it first ('ecuworks program')"
        if state is EcuMode.BOOTLOADER
        else "check that it is installed and powered"
    )
    raise Refused(
        f"{_label(ecu)} is {state}: its coding cannot be read or written; {advice}",
        check="vehicle",
    )


def _in_ecu(ecu: EcuInfo, error: ConfigError) -> ConfigError:
    return ConfigError(f"{_label(ecu)}: {error}")


# -- ecuworks code (VO coding) -------------------------------------------------------------


@code_app.callback(invoke_without_command=True)
def code_command(  # noqa: PLR0917 -- Typer maps each option to a parameter
    ctx: typer.Context,
    vci: Annotated[
        str | None, typer.Option(help="doip://HOST:PORT, hsfz://HOST:PORT or can://IF/CH")
    ] = None,
    ecu: Annotated[
        list[str] | None,
        typer.Option("--ecu", help="Code only this ECU (name or address), repeatable."),
    ] = None,
    yes: Yes = False,
    as_json: AsJson = False,
    battery: Battery = "lead-acid",
    min_volts: MinVolts = 13.0,
    tester_present: TesterPresent = 1.5,
    parallel: Parallel = 16,
    vci_admin: VciAdminUrl = None,
    owner: Owner = None,
) -> None:
    """Code the vehicle's ECUs from its vehicle order (VO coding), and read them back."""
    if ctx.invoked_subcommand is not None:
        return
    if vci is None:
        raise fail("give the vehicle interface: ecuworks code --vci URL", EXIT_USAGE)
    options = _options(battery, min_volts, tester_present, parallel, vci_admin, owner)
    pdata = load_pdata(ctx)
    names = list(ecu or [])

    def build(ident: Identification, catalog: Catalog) -> Plan:
        if not names:
            return build_coding_plan(ident, catalog)
        series = _series(ident)
        chosen = [_coded(resolve_ecu(catalog, series, n)) for n in names]
        for info in chosen:
            _answering(ident, info)
        return build_coding_plan(ident, catalog, ecus=sorted({e.address for e in chosen}))

    planned = run_guarded(plan_job(vci, pdata, build))
    plan = planned.plan
    if not as_json:
        render_plan(plan)
    if not plan.actions:
        console.print(f"{plan.vin}: no ECU with coding answered: nothing to code.")
        return
    check_battery(options, planned.ident)
    confirm(f"Code {len(plan.ecus)} ECU(s) of {plan.vin} from its vehicle order?", yes)
    execute_plan(ctx, vci, plan, pdata, options, as_json=as_json, owner=owner)


# -- ecuworks code get ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """One parameter as read from the ECU, beside what the vehicle order gives it.

    Attributes:
        vin: the vehicle.
        ecu: the ECU's P-Data metadata.
        parameter: the parameter's name.
        value: the value it holds now; None when its bits hold no named value.
        values: the values it may take.
        vo_value: what the VO's coding rules give it; None when no rule does.
        vo_known: whether the vehicle order could be read at all.
    """

    vin: str
    ecu: EcuInfo
    parameter: str
    value: str | None
    values: Sequence[str]
    vo_value: str | None
    vo_known: bool

    @property
    def contradicts_vo(self) -> bool:
        """The ECU holds something other than what the vehicle order gives."""
        return self.vo_value is not None and self.value != self.vo_value

    def to_json(self) -> dict[str, Any]:
        """The ``code get --json`` object."""
        return {
            "schema": SCHEMA,
            "vin": self.vin,
            "ecu": self.ecu.name,
            "address": self.ecu.address,
            "parameter": self.parameter,
            "value": self.value,
            "values": list(self.values),
            "vo_value": self.vo_value,
            "vo_known": self.vo_known,
            "contradicts_vo": self.contradicts_vo,
        }


async def read_parameter(vci: str, pdata: PData, ecu_name: str, parameter: str) -> Reading:
    """Identify the vehicle, read the ECU's coding records and decode one parameter.

    Raises:
        ConfigError: no such ECU or parameter.
        Refused: the series is unknown or the ECU does not run its application.
    """
    catalog = pdata.catalog
    async with open_link(vci) as link:
        ident = await identify_vehicle(link, pdata)
        series = _series(ident)
        ecu = resolve_ecu(catalog, series, ecu_name)
        try:
            values = parameter_values(ecu.coding, parameter)
        except ConfigError as error:
            raise _in_ecu(ecu, error) from None
        _answering(ident, ecu)
        client = UdsClient(link, ecu.address, timing=for_link(vci, None).timing)
        records = await read_records(client, ecu.coding)
    given = None
    if ident.vo is not None:
        given = vo_value(catalog, series, ecu.address, ident.vo, parameter)
    return Reading(
        vin=ident.vin,
        ecu=ecu,
        parameter=parameter,
        value=decode_value(ecu.coding, records, parameter),
        values=values,
        vo_value=given,
        vo_known=ident.vo is not None,
    )


@code_app.command(name="get")
def get_command(
    ctx: typer.Context,
    ecu: EcuName,
    parameter: Parameter,
    vci: VciOption,
    as_json: AsJson = False,
) -> None:
    """Show one coding parameter: its value now, its choices, and the vehicle order's."""
    pdata = load_pdata(ctx)
    reading = run_guarded(read_parameter(vci, pdata, ecu, parameter))
    if as_json:
        console.print_json(json.dumps(reading.to_json()))
        return
    now = reading.value if reading.value is not None else "(bits hold no named value)"
    console.print(f"{_label(reading.ecu)} {reading.parameter} = {now}", highlight=False)
    console.print(f"  values: {', '.join(reading.values)}", highlight=False)
    if not reading.vo_known:
        console.print("  vehicle order: could not be read from the gateway", highlight=False)
    elif reading.vo_value is None:
        console.print("  vehicle order: no coding rule gives this parameter", highlight=False)
    elif reading.contradicts_vo:
        console.print(
            f"  vehicle order gives: {reading.vo_value}  DIFFERS: the ECU contradicts the "
            "vehicle order; the next VO coding ('ecuworks code') will set it back",
            highlight=False,
        )
    else:
        console.print(f"  vehicle order gives: {reading.vo_value} (matches)", highlight=False)


# -- ecuworks code set ----------------------------------------------------------------------


@code_app.command(name="set")
def set_command(  # noqa: PLR0917 -- Typer maps each option to a parameter
    ctx: typer.Context,
    ecu: EcuName,
    parameter: Parameter,
    value: Annotated[str, typer.Argument(help="The value name to code.")],
    vci: VciOption,
    yes: Yes = False,
    as_json: AsJson = False,
    battery: Battery = "lead-acid",
    min_volts: MinVolts = 13.0,
    tester_present: TesterPresent = 1.5,
    vci_admin: VciAdminUrl = None,
    owner: Owner = None,
) -> None:
    """Code one parameter of one ECU by hand (expert coding), warning if the VO disagrees."""
    options = _options(battery, min_volts, tester_present, 1, vci_admin, owner)
    pdata = load_pdata(ctx)
    # What build() resolved, for the warning: the ECU and the value the VO gives.
    found: list[tuple[EcuInfo, str | None]] = []

    def build(ident: Identification, catalog: Catalog) -> Plan:
        series = _series(ident)
        info = resolve_ecu(catalog, series, ecu)
        try:
            find_parameter(info.coding, parameter)
            check_value(info.coding, parameter, value)
        except ConfigError as error:
            raise _in_ecu(info, error) from None
        _answering(ident, info)
        given = None
        if ident.vo is not None:
            given = vo_value(catalog, series, info.address, ident.vo, parameter)
        found.append((info, given))
        return build_expert_plan(
            ident, catalog, ecu=info.address, parameter=parameter, value=value, vo_value=given
        )

    planned = run_guarded(plan_job(vci, pdata, build))
    plan = planned.plan
    info, given = found[-1]
    contradicts = given is not None and given != value
    if not as_json:
        render_plan(plan)
    if planned.ident.vo is None:
        errors.print(
            f"warning: the gateway gave no vehicle order, so {parameter} = {value} cannot be "
            "checked against it",
            highlight=False,
        )
    elif contradicts:
        errors.print(
            f"warning: {parameter} = {value} contradicts the vehicle order, which gives "
            f"{given}; the next VO coding will set it back",
            highlight=False,
        )
    check_battery(options, planned.ident)
    against = " against the vehicle order" if contradicts else ""
    confirm(f"Code {_label(info)} {parameter} = {value}{against}?", yes)
    execute_plan(ctx, vci, plan, pdata, options, as_json=as_json, owner=owner)
