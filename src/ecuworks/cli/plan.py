"""``ecuworks plan --vci URL [--target ILEVEL|latest] [--filter RULE]... [--json] [-o FILE]``.

Identifies the vehicle, computes the measures plan against the workstation's P-Data and
shows it; ``-o FILE`` saves it for ``ecuworks apply``. Nothing is written to the vehicle.

Exit codes (DESIGN.md): 0 done; 2 usage or configuration (bad ``--target``, bad
``--filter``, a *must* rule unmet); 3 P-Data mismatch; 5 vehicle or interface not
reachable.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from ecuworks.cli.common import (
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    console,
    errors,
    fail,
    write_history,
)
from ecuworks.cli.identify import identify_vehicle
from ecuworks.cli.pdata import load_pdata
from ecuworks.errors import ConfigError, LinkError, ParseError, PDataMismatch, UdsError
from ecuworks.plan.build import build_plan
from ecuworks.plan.filter import PlanFilter
from ecuworks.plan.model import Plan
from ecuworks.plan.render import render_plan
from ecuworks.platform.recording import record_plan

__all__ = ["plan_command"]


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    directory = path.parent
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def plan_command(  # noqa: PLR0917 -- Typer maps each option to a parameter
    ctx: typer.Context,
    vci: Annotated[str, typer.Option(help="doip://HOST:PORT, hsfz://HOST:PORT or can://IF/CH")],
    target: Annotated[
        str, typer.Option(help="Target I-level, e.g. F030-24-07-570, or 'latest'.")
    ] = "latest",
    plan_filter: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            help="VERDICT:CATEGORY[@ECU], e.g. must-not:BlFlash, must-not:SwDeploy@0x63, "
            "must:CdDeploy@0x12 (repeatable).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Save the plan for 'ecuworks apply'.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the ECUs' answers.")] = 2.0,
) -> None:
    """Compute the measures plan to the target I-level; nothing is written to the vehicle."""
    try:
        rules = PlanFilter.parse(plan_filter or [])
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    if timeout <= 0:
        raise fail(f"--timeout must be positive, got {timeout}", EXIT_USAGE)
    pdata = load_pdata(ctx)
    try:
        ident, _, notes = asyncio.run(identify_vehicle(vci, None, pdata, timeout))
    except (ConfigError, ParseError) as error:
        raise fail(str(error), EXIT_USAGE) from error
    except LinkError as error:
        raise fail(
            f"{error}. Is the vehicle interface connected at {vci}?", EXIT_UNREACHABLE
        ) from error
    except UdsError as error:
        raise fail(str(error), 1) from error
    try:
        plan = build_plan(ident, pdata.catalog, target=target, plan_filter=rules)
    except PDataMismatch as error:
        raise fail(str(error), EXIT_REFUSED) from error
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    if output is not None:
        try:
            _write_atomic(output, plan.to_bytes())
        except OSError as error:
            raise fail(
                f"cannot write the plan to {output}: {error.strerror}", EXIT_USAGE
            ) from error
    _show(plan, as_json, output, [*notes, *ident.notes])
    write_history(
        ctx,
        "the plan",
        lambda db, user, workstation: record_plan(db, plan, user=user, workstation=workstation),
    )


def _show(plan: Plan, as_json: bool, output: Path | None, notes: list[str]) -> None:
    if as_json:
        console.print_json(plan.to_bytes().decode())
    else:
        render_plan(plan, console)
    for note in notes:
        errors.print(f"note: {note}", highlight=False, soft_wrap=True)
    if output is not None:
        errors.print(f"plan saved to {output}", highlight=False, soft_wrap=True)
