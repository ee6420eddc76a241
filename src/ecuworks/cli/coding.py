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
from typing import Annotated

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
from ecuworks.execute.jobs import ExpertCoding, coding_builder, label, read_parameter
from ecuworks.execute.session import plan_job
from ecuworks.plan.render import render_plan

__all__ = ["code_app", "code_command", "get_command", "set_command"]

code_app = typer.Typer(
    name="code",
    help="Coding: VO coding of the ECUs (no subcommand), or one parameter by hand (get, set).",
)

EcuName = Annotated[str, typer.Argument(help="The ECU: its name (HU) or address (0x63).")]
Parameter = Annotated[str, typer.Argument(help="The coding parameter's name.")]
VciOption = Annotated[str, typer.Option(help="doip://HOST:PORT, hsfz://HOST:PORT or can://IF/CH")]


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
    options = _options(ctx, battery, min_volts, tester_present, parallel, vci_admin, owner)
    pdata = load_pdata(ctx)
    planned = run_guarded(plan_job(vci, pdata, coding_builder(list(ecu or []))))
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
    console.print(f"{label(reading.ecu)} {reading.parameter} = {now}", highlight=False)
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
    options = _options(ctx, battery, min_volts, tester_present, 1, vci_admin, owner)
    pdata = load_pdata(ctx)
    expert = ExpertCoding(ecu=ecu, parameter=parameter, value=value)
    planned = run_guarded(plan_job(vci, pdata, expert))
    plan = planned.plan
    if not as_json:
        render_plan(plan)
    if expert.warning is not None:
        errors.print(f"warning: {expert.warning}", highlight=False)
    check_battery(options, planned.ident)
    assert expert.info is not None
    against = " against the vehicle order" if expert.contradicts_vo else ""
    confirm(f"Code {label(expert.info)} {parameter} = {value}{against}?", yes)
    execute_plan(ctx, vci, plan, pdata, options, as_json=as_json, owner=owner)
