"""``ecuworks diag dtc --vci URL [--clear] [--yes] [--json]``: the vehicle's fault memory.

The vehicle is identified first; then every ECU that answered is asked for its fault
memory at once, each entry described from P-Data. ``--clear`` shows what is stored, asks
(``--yes`` skips the question; with no terminal and no ``--yes`` it refuses, exit 2),
clears every ECU whose memory was read, and reads again: a fault that is still present
comes back at once, and is shown. The clear runs as a plan of job ``diag``: journaled,
resumable, on the reserved VCI (``--vci-admin``).

Exit codes (DESIGN.md): 0 done; 1 an ECU did not confirm the clear; 2 usage (or no
terminal to confirm and no ``--yes``); 3 P-Data failed verification, or another vehicle
was connected between reading and clearing; 5 vehicle or interface not reachable.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from ecuworks.cli.common import (
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    console,
    errors,
    fail,
    home,
    write_history,
)
from ecuworks.cli.pdata import load_pdata
from ecuworks.cli.program import Owner, VciAdminUrl, confirm, run_options, run_session
from ecuworks.errors import ConfigError, LinkError, ParseError, Refused, UdsError
from ecuworks.execute.session import apply_plan, identify_vehicle
from ecuworks.pdata.source import PData
from ecuworks.plan.jobs import build_clear_plan
from ecuworks.platform.recording import record_dtc_read
from ecuworks.transport.url import open_link
from ecuworks.vehicle.dtc import (
    FaultMemory,
    FaultState,
    read_vehicle_fault_memory,
    readable,
    status_flags,
)
from ecuworks.vehicle.identify import Identification

__all__ = ["diag_app", "dtc_command"]

_T = TypeVar("_T")
# An ECU that did not confirm the clear: the ECU's answer, as for 'send' (README).
_EXIT_NOT_CLEARED = 1

diag_app = typer.Typer(
    name="diag",
    help="Diagnosis: read and clear the fault memory of every ECU.",
    no_args_is_help=True,
)


def _run(vci: str, work: Coroutine[Any, Any, _T]) -> _T:
    """Run ``work``, turning errors into the exit codes of DESIGN.md."""
    try:
        return asyncio.run(work)
    except Refused as error:
        raise fail(str(error), EXIT_REFUSED) from error
    except (ConfigError, ParseError) as error:
        raise fail(str(error), EXIT_USAGE) from error
    except LinkError as error:
        raise fail(
            f"{error}. Is the vehicle interface connected at {vci}?", EXIT_UNREACHABLE
        ) from error
    except UdsError as error:
        raise fail(str(error), 1) from error


async def _read(vci: str, pdata: PData, timeout: float) -> tuple[Identification, FaultMemory]:
    async with open_link(vci) as link:
        ident = await identify_vehicle(link, pdata, timeout=timeout)
        memory = await read_vehicle_fault_memory(link, ident, pdata.catalog, timeout=timeout)
    return ident, memory


@diag_app.command(name="dtc")
def dtc_command(  # noqa: PLR0917 -- Typer maps each option to a parameter
    ctx: typer.Context,
    vci: Annotated[str, typer.Option(help="doip://HOST:PORT, hsfz://HOST:PORT or can://IF/CH")],
    clear: Annotated[
        bool, typer.Option("--clear", help="Clear every ECU's fault memory (asks first).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the ECUs' answers.")] = 2.0,
    vci_admin: VciAdminUrl = None,
    owner: Owner = None,
) -> None:
    """Read the fault memory of every ECU, with descriptions from P-Data; --clear clears it.

    The clear is a journaled session (job ``diag``) on the reserved VCI, like every job
    that writes to the vehicle.
    """
    if timeout <= 0:
        raise fail(f"--timeout must be positive, got {timeout}", EXIT_USAGE)
    pdata = load_pdata(ctx)
    ident, before = _run(vci, _read(vci, pdata, timeout))
    write_history(
        ctx,
        "the fault memory read",
        lambda db, user, workstation: record_dtc_read(
            db, before, vin=ident.vin, user=user, workstation=workstation
        ),
        owner=owner,
    )
    if not clear:
        _show(before, as_json)
        return
    if before.entries == 0:
        _show(before, as_json)
        if not as_json:
            console.print("nothing to clear")
        return
    if not as_json:
        _render(before)
    targets = readable(before)
    confirm(
        f"Clear the fault memory of {len(targets)} ECU(s) of {before.vin} "
        f"({_entries(before.entries)})?",
        yes,
    )
    options = run_options(ctx, vci_admin=vci_admin, owner=owner)
    try:
        plan = build_clear_plan(ident, pdata.catalog)
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    report = run_session(
        ctx, plan, apply_plan(vci, plan, pdata, home(ctx), options=options), owner=owner
    )
    _, after = _run(vci, _read(vci, pdata, timeout))
    refused = report.not_cleared
    cleared: dict[int, bool | str] = {a: refused.get(a, True) for a in targets}
    if as_json:
        document = after.to_json()
        document["cleared"] = {str(a): result for a, result in sorted(cleared.items())}
        document["before"] = before.to_json()["ecus"]
        document["session"] = report.session
        console.print_json(json.dumps(document))
    else:
        console.print(
            f"cleared {len(cleared) - len(refused)} of {len(cleared)} ECU(s); now:",
            highlight=False,
        )
        _render(after)
        if after.entries:
            console.print(
                "the entries above came back at once: their faults are still present",
                highlight=False,
            )
    for ecu in before.ecus:
        if ecu.state is not FaultState.ANSWERING:
            errors.print(
                f"note: {_label(ecu.address, ecu.name)} was not cleared: {ecu.problem}",
                highlight=False,
                soft_wrap=True,
            )
    if refused:
        names = {ecu.address: ecu.name for ecu in before.ecus}
        lines = "; ".join(f"{_label(a, names.get(a))} {why}" for a, why in refused.items())
        raise fail(f"not every ECU cleared its fault memory: {lines}", _EXIT_NOT_CLEARED)


def _show(memory: FaultMemory, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(memory.to_json()))
    else:
        _render(memory)


def _entries(count: int) -> str:
    return f"{count} fault memory {'entry' if count == 1 else 'entries'}"


def _label(address: int, name: str | None) -> str:
    return f"0x{address:02X} {name}" if name else f"0x{address:02X}"


def _render(memory: FaultMemory) -> None:
    """A table ECU / code / status / description; a line when nothing is stored."""
    console.print(f"VIN       {memory.vin or 'unknown'}", highlight=False)
    table = Table(title=None, show_lines=False)
    table.add_column("ECU")
    table.add_column("code")
    table.add_column("status")
    table.add_column("description")
    for ecu in memory.ecus:
        label = _label(ecu.address, ecu.name)
        if ecu.state is not FaultState.ANSWERING:
            table.add_row(label, "-", str(ecu.state), ecu.problem or "")
        for entry in ecu.dtcs:
            flags = ", ".join(status_flags(entry.status))
            table.add_row(label, f"0x{entry.code:06X}", f"0x{entry.status:02X} {flags}", entry.text)
    if table.row_count:
        console.print(table)
    read = len(readable(memory))
    unread = len(memory.ecus) - read
    also = f"; {unread} not read, see above" if unread else ""
    if memory.entries == 0:
        console.print(f"no fault memory entries ({read} ECUs read{also})", highlight=False)
    else:
        with_entries = sum(1 for ecu in memory.ecus if ecu.dtcs)
        console.print(
            f"{_entries(memory.entries)} in {with_entries} of {read} ECUs read{also}",
            highlight=False,
        )
