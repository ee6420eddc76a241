"""``ecuworks apply FILE``, ``program`` and ``resume``: execute a measures plan.

Exit codes (DESIGN.md): 0 done; 2 usage (or no terminal to confirm and no ``--yes``);
3 refused before touching the vehicle (voltage, stale plan, P-Data, journal); 4 failed
while programming (journal kept, ``resume`` possible); 5 vehicle not reachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ecuworks.cli.common import (
    EXIT_FAILED,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    console,
    errors,
    fail,
    fsc_issuing,
    home,
    write_history,
)
from ecuworks.cli.pdata import load_pdata
from ecuworks.cli.progress_view import ProgressView, render_report
from ecuworks.errors import (
    ConfigError,
    JournalError,
    LinkError,
    ParseError,
    PDataMismatch,
    ProgrammingFailed,
    Refused,
    UdsError,
)
from ecuworks.execute.power import PowerPolicy
from ecuworks.execute.report import Report
from ecuworks.execute.reservation import Reservation, default_owner
from ecuworks.execute.runner import RunOptions
from ecuworks.execute.session import apply_plan, make_plan, resume_session, unfinished
from ecuworks.pdata.source import PData
from ecuworks.plan.filter import PlanFilter
from ecuworks.plan.model import Plan
from ecuworks.plan.render import render_plan
from ecuworks.platform.recording import record_failure, record_plan, record_session
from ecuworks.vehicle.identify import Identification

__all__ = [
    "apply_command",
    "confirm",
    "finish",
    "program_command",
    "resume_command",
    "run_guarded",
    "run_options",
    "run_session",
]

_T = TypeVar("_T")

Vci = Annotated[str, typer.Option(help="doip://HOST:PORT, hsfz://HOST:PORT or can://IF/CH")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]
Battery = Annotated[str, typer.Option(help="Battery type: lead-acid or lfp.")]
MinVolts = Annotated[
    float, typer.Option(help="Least battery voltage to start and to go on after a pause.")
]
TesterPresent = Annotated[
    float,
    typer.Option(
        help="Seconds between tester presents (lower it for a simulator at a high time scale)."
    ),
]
Parallel = Annotated[int, typer.Option(help="ECUs programmed at once after the gateway.")]
VciAdminUrl = Annotated[
    str | None,
    typer.Option(
        "--vci-admin",
        envvar="ECUWORKS_VCI_ADMIN",
        help="The VCI's management address (http://HOST:PORT), where it is reserved "
        "for the session. Without it the VCI is not reserved.",
    ),
]
Owner = Annotated[
    str | None,
    typer.Option(help="This workstation's name on the VCI's reservation (default user@host)."),
]


def run_guarded(work: Coroutine[Any, Any, _T]) -> _T:
    """Run ``work``, turning errors into the exit codes of DESIGN.md."""
    try:
        return asyncio.run(work)
    except (Refused, PDataMismatch) as error:
        raise fail(str(error), EXIT_REFUSED) from error
    except ProgrammingFailed as error:
        raise fail(str(error), EXIT_FAILED) from error
    except JournalError as error:
        raise fail(str(error), EXIT_REFUSED) from error
    except (ConfigError, ParseError) as error:
        raise fail(str(error), EXIT_USAGE) from error
    except LinkError as error:
        raise fail(
            f"{error}. Is the vehicle interface connected? Nothing was written.", EXIT_UNREACHABLE
        ) from error
    except UdsError as error:
        raise fail(f"{error}. Nothing was written.", EXIT_REFUSED) from error
    except KeyboardInterrupt:
        raise fail(
            "interrupted; the journal keeps where it stopped: run 'ecuworks resume'", EXIT_FAILED
        ) from None


def check_battery(options: RunOptions, ident: Identification) -> None:
    """Refuse a low battery before asking, so a technician is not asked in vain."""
    try:
        options.power.check_start(ident.battery_volts)
    except Refused as error:
        raise fail(str(error), EXIT_REFUSED) from error


def execute_plan(
    ctx: typer.Context,
    vci: str,
    plan: Plan,
    pdata: PData,
    options: RunOptions,
    *,
    as_json: bool,
    owner: str | None,
) -> None:
    """Execute a confirmed plan with its progress view, record it, print the report."""
    with ProgressView(plan, quiet=as_json) as view:
        report = run_session(
            ctx,
            plan,
            apply_plan(vci, plan, pdata, home(ctx), options=options, progress=view),
            owner=owner,
        )
    finish(report, plan, as_json)


def run_session(
    ctx: typer.Context, plan: Plan, work: Coroutine[Any, Any, Report], *, owner: str | None
) -> Report:
    """Run the session ``work`` of ``plan`` as :func:`run_guarded` does, and record it in
    the vehicle history: its report, or why it stopped (a refusal before anything was
    written is not recorded)."""
    stopped: list[str] = []

    async def watched() -> Report:
        try:
            return await work
        except ProgrammingFailed as error:
            stopped.append(str(error))
            raise
        except asyncio.CancelledError:  # Ctrl-C: the journal marked the session, so does this
            stopped.append("interrupted by the technician (Ctrl-C)")
            raise

    try:
        report = run_guarded(watched())
    except typer.Exit:
        if stopped:
            _record_stop(ctx, plan, stopped[0], owner)
        raise
    write_history(
        ctx,
        f"the {plan.job} session {report.session}",
        lambda db, user, workstation: record_session(
            db, report, plan, user=user, workstation=workstation
        ),
        owner=owner,
        session=report.session,
    )
    return report


def _record_stop(ctx: typer.Context, plan: Plan, reason: str, owner: str | None) -> None:
    session = None
    with contextlib.suppress(JournalError):  # it was just written; if not, say so unlinked
        found = unfinished(home(ctx), plan.vin)
        session = None if found is None else found.id
    write_history(
        ctx,
        f"the failed {plan.job} session",
        lambda db, user, workstation: record_failure(
            db, plan, reason, session=session, user=user, workstation=workstation
        ),
        owner=owner,
        session=session,
    )


def _options(  # noqa: PLR0917 -- the commands' shared options, in their order
    ctx: typer.Context,
    battery: str,
    min_volts: float,
    tester_present: float,
    parallel: int,
    vci_admin: str | None = None,
    owner: str | None = None,
) -> RunOptions:
    try:
        power = PowerPolicy(battery=battery, min_start_volts=min_volts)
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    if tester_present <= 0 or parallel < 1:
        raise fail("--tester-present must be positive and --parallel at least 1", EXIT_USAGE)
    # Enabling codes (retrofit, replacement, enable, and their resume).
    fsc_source, issuer_key = fsc_issuing(ctx)
    return RunOptions(
        power=power,
        tester_present_s=tester_present,
        max_parallel=parallel,
        reservation=_reservation(vci_admin, owner),
        fsc_source=fsc_source,
        issuer_key=issuer_key,
    )


def run_options(
    ctx: typer.Context,
    *,
    tester_present: float = 1.5,
    vci_admin: str | None = None,
    owner: str | None = None,
    battery: str = "lead-acid",
    min_volts: float = 13.0,
    parallel: int = 16,
) -> RunOptions:
    """The run options of a job command, checked as the programming commands check them."""
    return _options(ctx, battery, min_volts, tester_present, parallel, vci_admin, owner)


def _reservation(vci_admin: str | None, owner: str | None) -> Reservation | None:
    if vci_admin is None:
        errors.print(
            "note: no --vci-admin given, so the VCI is not reserved: another workstation "
            "could drive this vehicle at the same time",
            highlight=False,
        )
        return None
    name = owner or default_owner()
    if not 1 <= len(name) <= 64 or not name.isprintable() or not name.strip():
        raise fail(f"--owner must be 1 to 64 printable characters, got {name!r}", EXIT_USAGE)
    return Reservation(url=vci_admin, owner=name)


def confirm(question: str, yes: bool) -> None:
    """Ask, unless ``--yes``; without a terminal and ``--yes``, refuse (DESIGN.md)."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise fail(
            "this changes the vehicle and there is no terminal to confirm it; "
            "pass --yes to go ahead",
            EXIT_USAGE,
        )
    if not typer.confirm(question, default=False):
        raise typer.Exit(1)


def finish(report: Report, plan: Plan, as_json: bool, *, time_scale: float = 1.0) -> None:
    """Print the report; exit 4 unless the vehicle is at its target."""
    if as_json:
        console.print_json(json.dumps(report.to_json()))
    else:
        render_report(report, plan, time_scale=time_scale)
    if report.outcome != "done":
        raise fail(
            "the final check found the vehicle not at its target (see above); "
            "run 'ecuworks resume' or 'ecuworks program' again",
            EXIT_FAILED,
        )


def apply_command(  # noqa: PLR0917 -- Typer maps each option to a parameter
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A plan written by 'ecuworks plan -o FILE'.")],
    vci: Vci,
    yes: Yes = False,
    as_json: AsJson = False,
    battery: Battery = "lead-acid",
    min_volts: MinVolts = 13.0,
    tester_present: TesterPresent = 1.5,
    parallel: Parallel = 16,
    vci_admin: VciAdminUrl = None,
    owner: Owner = None,
) -> None:
    """Execute a saved plan on the vehicle it was made for."""
    options = _options(ctx, battery, min_volts, tester_present, parallel, vci_admin, owner)
    try:
        plan = Plan.from_bytes(file.read_bytes(), str(file))
    except OSError as error:
        raise fail(f"cannot read the plan {file}: {error.strerror}", EXIT_USAGE) from error
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    pdata = load_pdata(ctx)
    if not as_json:
        render_plan(plan)
    confirm(f"Program {len(plan.ecus)} ECU(s) of {plan.vin} to {plan.target_ilevel}?", yes)
    execute_plan(ctx, vci, plan, pdata, options, as_json=as_json, owner=owner)


def program_command(  # noqa: PLR0917 -- Typer maps each option to a parameter
    ctx: typer.Context,
    vci: Vci,
    target: Annotated[str, typer.Option(help="Target I-level, or 'latest'.")] = "latest",
    plan_filter: Annotated[
        list[str] | None,
        typer.Option("--filter", help="must|must-not|allowed:CATEGORY[@ECU], repeatable."),
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
    """Identify, plan to the target I-level, confirm and program the vehicle."""
    options = _options(ctx, battery, min_volts, tester_present, parallel, vci_admin, owner)
    try:
        rules = PlanFilter.parse(plan_filter or [])
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    pdata = load_pdata(ctx)
    planned = run_guarded(make_plan(vci, pdata, target=target, plan_filter=rules))
    plan = planned.plan
    if not as_json:
        render_plan(plan)
    if not plan.actions and plan.target_ilevel == plan.actual_ilevel:
        console.print(f"{plan.vin} is at {plan.target_ilevel} already: nothing to program.")
        write_history(
            ctx,
            "the plan",
            lambda db, user, workstation: record_plan(db, plan, user=user, workstation=workstation),
            owner=owner,
        )
        return
    check_battery(options, planned.ident)
    confirm(f"Program {len(plan.ecus)} ECU(s) of {plan.vin} to {plan.target_ilevel}?", yes)
    execute_plan(ctx, vci, plan, pdata, options, as_json=as_json, owner=owner)


def resume_command(  # noqa: PLR0917 -- Typer maps each option to a parameter
    ctx: typer.Context,
    vci: Vci,
    yes: Yes = False,
    as_json: AsJson = False,
    battery: Battery = "lead-acid",
    min_volts: MinVolts = 13.0,
    tester_present: TesterPresent = 1.5,
    parallel: Parallel = 16,
    vci_admin: VciAdminUrl = None,
    owner: Owner = None,
) -> None:
    """Continue the interrupted session (any job) of the connected vehicle."""
    options = _options(ctx, battery, min_volts, tester_present, parallel, vci_admin, owner)
    pdata = load_pdata(ctx)
    try:
        session = unfinished(home(ctx))
    except JournalError as error:
        raise fail(str(error), EXIT_REFUSED) from error
    if session is None:
        raise fail("the journal has no unfinished session: nothing to resume", EXIT_REFUSED)
    plan = Plan.from_bytes(session.plan_json.encode(), "journal plan")
    if not as_json:
        console.print(
            f"Session {session.id} for {session.vin} to {session.target_ilevel} "
            f"({session.state}{': ' + session.note if session.note else ''})",
            highlight=False,
        )
    job = "programming" if plan.job == "program" else f"the {plan.job} job of"
    confirm(f"Resume {job} {session.vin}?", yes)
    with ProgressView(plan, quiet=as_json) as view:
        report = run_session(
            ctx,
            plan,
            resume_session(vci, pdata, home(ctx), options=options, progress=view),
            owner=owner,
        )
    finish(report, plan, as_json)
