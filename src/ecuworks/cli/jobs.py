"""``ecuworks enable APP``, ``retrofit OPTION`` and ``replace ECU``: the jobs around a part.

Each makes a plan (:mod:`ecuworks.plan.jobs`) and runs it like ``program`` does, so it is
journaled and ``ecuworks resume`` finishes it after a crash. Where the technician has a
hardware step, the command says what to do and waits for the part to answer (bounded by
``--wait``). Enabling codes come from the backend's issuer, called in-process with the demo
key until the backend's HTTP service exists (issue 8); ``enable --fsc-file`` writes a code
received otherwise, and the ECU's verdict on it is reported.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from ecuworks.cli.common import EXIT_FAILED, EXIT_USAGE, errors, fail
from ecuworks.cli.pdata import load_pdata
from ecuworks.cli.program import (
    AsJson,
    Owner,
    TesterPresent,
    Vci,
    VciAdminUrl,
    Yes,
    confirm,
    execute_plan,
    run_guarded,
    run_options,
)
from ecuworks.execute.jobs import (
    Builder,
    check_retrofit,
    missing_parts,
    parts_of,
    replace_builder,
    retrofit_builder,
)
from ecuworks.execute.runner import RunOptions
from ecuworks.execute.session import identify_vehicle, plan_job
from ecuworks.pdata.model import Retrofit
from ecuworks.pdata.source import PData
from ecuworks.plan.jobs import build_enable_plan
from ecuworks.plan.render import render_plan
from ecuworks.transport.url import open_link

__all__ = ["enable_command", "replace_command", "retrofit_command"]

Wait = Annotated[float, typer.Option(help="Seconds to wait for the technician's hardware step.")]


def _number(text: str, what: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise fail(f"{what} must be a number like 0x0041 or 65, got {text!r}", EXIT_USAGE) from None


def _run(  # noqa: PLR0917 -- the job commands' shared tail, one call per command
    ctx: typer.Context,
    vci: str,
    plan_build: Builder,
    options: RunOptions,
    yes: bool,
    as_json: bool,
    owner: str | None,
) -> None:
    """Plan with ``plan_build``, show, confirm, execute, report, record in the history."""
    pdata = load_pdata(ctx)
    planned = run_guarded(plan_job(vci, pdata, plan_build))
    plan = planned.plan
    if not as_json:
        render_plan(plan)
    confirm(f"Run the {plan.job} plan on {plan.vin} ({len(plan.actions)} action(s))?", yes)
    execute_plan(ctx, vci, plan, pdata, options, as_json=as_json, owner=owner)


def enable_command(  # noqa: PLR0917 -- Typer maps each option to a parameter
    ctx: typer.Context,
    app: Annotated[str, typer.Argument(help="Application id, e.g. 0x0041.")],
    vci: Vci,
    fsc_file: Annotated[
        Path | None,
        typer.Option(help="Write this enabling code (a 93-byte record) instead of obtaining one."),
    ] = None,
    yes: Yes = False,
    as_json: AsJson = False,
    tester_present: TesterPresent = 1.5,
    vci_admin: VciAdminUrl = None,
    owner: Owner = None,
) -> None:
    """Obtain an enabling code (FSC) for an application, write it and check the ECU's verdict."""
    app_id = _number(app, "APP")
    options = run_options(ctx, tester_present=tester_present, vci_admin=vci_admin, owner=owner)
    if fsc_file is not None:
        try:
            record = fsc_file.read_bytes()
        except OSError as error:
            raise fail(f"cannot read {fsc_file}: {error.strerror}", EXIT_USAGE) from error

        async def from_file(_vin: str, _app: int, _index: int, /) -> bytes:
            return record

        options = replace(options, fsc_source=from_file)
    _run(
        ctx,
        vci,
        lambda ident, catalog: build_enable_plan(ident, catalog, apps=[app_id]),
        options,
        yes,
        as_json,
        owner,
    )


def replace_command(  # noqa: PLR0917 -- Typer maps each option to a parameter
    ctx: typer.Context,
    ecu: Annotated[str, typer.Argument(help="The ECU to replace: its name or address.")],
    vci: Vci,
    yes: Yes = False,
    as_json: AsJson = False,
    wait: Wait = 900.0,
    tester_present: TesterPresent = 1.5,
    vci_admin: VciAdminUrl = None,
    owner: Owner = None,
) -> None:
    """Back up an ECU, guide its swap, program and code the new part, restore its data."""
    options = run_options(ctx, tester_present=tester_present, vci_admin=vci_admin, owner=owner)
    options = replace(options, hardware_wait_s=wait)
    _run(ctx, vci, replace_builder(ecu), options, yes, as_json, owner)


def retrofit_command(  # noqa: PLR0917 -- Typer maps each option to a parameter
    ctx: typer.Context,
    option: Annotated[str, typer.Argument(help="The option code to retrofit, e.g. $610.")],
    vci: Vci,
    yes: Yes = False,
    as_json: AsJson = False,
    wait: Wait = 900.0,
    tester_present: TesterPresent = 1.5,
    vci_admin: VciAdminUrl = None,
    owner: Owner = None,
) -> None:
    """Guide a retrofit: install the part, then program, code and enable what it touches."""
    options = run_options(ctx, tester_present=tester_present, vci_admin=vci_admin, owner=owner)
    pdata = load_pdata(ctx)
    code = option if option.startswith("$") else f"${option}"
    vin, retrofit = run_guarded(_check_retrofit(vci, pdata, code))
    confirm(f"Retrofit {code} ({retrofit.name}) on {vin}?", yes)
    run_guarded(_await_parts(vci, retrofit, wait))
    _run(
        ctx,
        vci,
        retrofit_builder(code, parts_of(retrofit)),
        options,
        yes=True,  # confirmed above, before the hardware step
        as_json=as_json,
        owner=owner,
    )


async def _check_retrofit(vci: str, pdata: PData, option: str) -> tuple[str, Retrofit]:
    """The retrofit exists for this car and is not done yet: the VIN and the retrofit."""
    async with open_link(vci) as link:
        ident = await identify_vehicle(link, pdata)
    return ident.vin, check_retrofit(ident, pdata.catalog, option)


async def _await_parts(vci: str, retrofit: Retrofit, wait: float) -> None:
    """Tell the technician what to install, then wait until every part answers."""
    async with open_link(vci) as link:
        for part in parts_of(retrofit):
            errors.print(
                f"{part.instruction(retrofit)} now; waiting up to {wait:.0f} s for it to answer",
                highlight=False,
            )
            deadline = time.monotonic() + wait
            while part in await missing_parts(link, retrofit):
                if time.monotonic() >= deadline:
                    raise fail(
                        f"the {part.name} did not answer at 0x{part.address:02X} within "
                        f"{wait:.0f} s: check its connector and supply, then run the retrofit "
                        "again. Nothing was written.",
                        EXIT_FAILED,
                    )
                await asyncio.sleep(0.5)  # a technician's pace; bounded by the deadline
            errors.print(f"{part.name} answers at 0x{part.address:02X}", highlight=False)
