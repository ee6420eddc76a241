"""``ecuworks identify --vci URL [--json] [--gateway ADDR]``: who the vehicle is, what it has.

The ECUs the vehicle should have come from the workstation's P-Data for the vehicle's
series (read from the gateway's I-level triple first), so that an ECU that does not answer
is listed as such instead of missing. ECUs that only a retrofit installs are expected when
the vehicle order holds the retrofit's option.

Exit codes (DESIGN.md): 0 done; 2 usage; 3 P-Data failed verification; 5 vehicle or
interface not reachable.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.table import Table

from ecuworks.cli.common import (
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    console,
    errors,
    fail,
    write_history,
)
from ecuworks.cli.pdata import load_pdata
from ecuworks.errors import ConfigError, LinkError, ParseError, UdsError
from ecuworks.execute.session import expected_ecus
from ecuworks.execute.session import identify_vehicle as identify_with_pdata
from ecuworks.pdata.source import PData
from ecuworks.platform.recording import record_identify
from ecuworks.transport.url import open_link
from ecuworks.vehicle import Identification

__all__ = ["identify_command", "identify_vehicle"]


def _address(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a number (use 16 or 0x10)") from None
    if not 0 <= value <= 0xFFFF:
        raise typer.BadParameter(f"{text!r} is not a diagnostic address (0x00-0xFFFF)")
    return value


async def identify_vehicle(
    vci: str, gateway: int | None, pdata: PData, timeout: float
) -> tuple[Identification, dict[int, str], list[str]]:
    """Identify the vehicle at ``vci``, expecting the ECUs P-Data lists for its series.

    Returns:
        The identification, ECU names by address, and notes for the technician.
    """
    async with open_link(vci) as link:
        identification = await identify_with_pdata(link, pdata, gateway=gateway, timeout=timeout)
    triple = identification.ilevel
    if triple is None:
        note = (
            f"no I-level triple from the gateway 0x{identification.gateway:02X}: the series "
            "is unknown, so no ECU is expected from P-Data"
        )
        return identification, {}, [note]
    series = triple.current.series
    if series not in pdata.catalog.series:
        return (
            identification,
            {},
            [f"no P-Data for series {series}: no ECU is expected, none named"],
        )
    return identification, expected_ecus(pdata, series, identification.vo)[0], []


def identify_command(
    ctx: typer.Context,
    vci: Annotated[str, typer.Option(help="doip://HOST:PORT, hsfz://HOST:PORT or can://IF/CH")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    gateway: Annotated[
        str | None,
        typer.Option(
            help="Address of the ECU holding VIN, VO and I-levels: 0x10 (ZGW, F/G-series), "
            "0x40 (CAS, E-series). Default: whichever of them answers."
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the ECUs' answers.")] = 2.0,
) -> None:
    """Identify the vehicle: VIN, VO, I-levels, battery, and every ECU's SVK and state."""
    address = None if gateway is None else _address(gateway)
    if timeout <= 0:
        raise fail(f"--timeout must be positive, got {timeout}", EXIT_USAGE)
    pdata = load_pdata(ctx)
    try:
        identification, names, notes = asyncio.run(identify_vehicle(vci, address, pdata, timeout))
    except (ConfigError, ParseError) as error:
        raise fail(str(error), EXIT_USAGE) from error
    except LinkError as error:
        raise fail(
            f"{error}. Is the vehicle interface connected at {vci}?", EXIT_UNREACHABLE
        ) from error
    except UdsError as error:
        raise fail(str(error), 1) from error
    notes = [*notes, *identification.notes]
    write_history(
        ctx,
        "the identification",
        lambda db, user, workstation: record_identify(
            db, identification, user=user, workstation=workstation
        ),
    )
    if as_json:
        document = identification.to_json()
        for ecu in document["ecus"]:
            ecu["name"] = names.get(ecu["address"])
        document["notes"] = notes
        console.print_json(json.dumps(document))
        return
    _render(identification, names)
    for note in notes:
        errors.print(f"note: {note}", highlight=False, soft_wrap=True)


def _render(identification: Identification, names: dict[int, str]) -> None:
    ilevel = identification.ilevel
    volts = identification.battery_volts
    lines = [
        f"VIN       {identification.vin}",
        f"VO        {identification.vo if identification.vo is not None else 'unknown'}",
        "I-level   "
        + (
            f"current {ilevel.current}  last {ilevel.last}  shipment {ilevel.shipment}"
            if ilevel is not None
            else "unknown"
        ),
        f"Battery   {f'{volts:.2f} V' if volts is not None else 'unknown'}",
        f"Gateway   0x{identification.gateway:02X}",
    ]
    for line in lines:
        console.print(line, highlight=False)
    table = Table(title=None, show_lines=False)
    table.add_column("address")
    table.add_column("name")
    table.add_column("state")
    table.add_column("SVK")
    for ecu in identification.ecus:
        table.add_row(
            f"0x{ecu.address:02X}",
            names.get(ecu.address, ""),
            str(ecu.state),
            "\n".join(str(unit) for unit in ecu.svk) or (ecu.problem or ""),
        )
    console.print(table)
