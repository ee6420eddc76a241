"""``ecuworks`` command line: the entry point and the low-level protocol commands.

Commands only parse options, call the layers and render; exit codes follow DESIGN.md
(0 done, 2 usage, 5 vehicle or interface not reachable).
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Annotated

import typer

from ecuworks import __version__
from ecuworks.cli.backend import backend_app
from ecuworks.cli.coding import code_app
from ecuworks.cli.common import EXIT_UNREACHABLE, EXIT_USAGE, console, fail
from ecuworks.cli.demo import demo_command
from ecuworks.cli.diag import diag_app
from ecuworks.cli.identify import identify_command
from ecuworks.cli.jobs import enable_command, replace_command, retrofit_command
from ecuworks.cli.pdata import pdata_app
from ecuworks.cli.plan import plan_command
from ecuworks.cli.program import apply_command, program_command, resume_command
from ecuworks.cli.serve import serve_command, users_app
from ecuworks.cli.sync import sync_app
from ecuworks.errors import ConfigError, LinkError, ParseError, UdsError
from ecuworks.transport import discovery
from ecuworks.transport.url import open_link
from ecuworks.uds.client import Timing, UdsClient

app = typer.Typer(
    name="ecuworks",
    help="Program, code and enable vehicle ECUs over UDS (DoIP, HSFZ, ISO-TP).",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(pdata_app, name="pdata")
app.add_typer(code_app, name="code")
app.add_typer(diag_app, name="diag")
app.add_typer(users_app, name="users")
app.add_typer(backend_app, name="backend")
app.add_typer(sync_app, name="sync")
app.command(name="identify")(identify_command)
app.command(name="plan")(plan_command)
app.command(name="apply")(apply_command)
app.command(name="program")(program_command)
app.command(name="resume")(resume_command)
app.command(name="demo")(demo_command)
app.command(name="enable")(enable_command)
app.command(name="retrofit")(retrofit_command)
app.command(name="replace")(replace_command)
app.command(name="serve")(serve_command)


def _version(value: bool) -> None:
    if value:
        console.print(f"ecuworks {__version__}")
        raise typer.Exit


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Data directory (database, P-Data, journals); default $ECUWORKS_HOME.",
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="ECUWORKS_DB",
            help="Platform database URL (users, vehicle history): sqlite:///PATH or "
            "postgresql://USER@HOST/NAME; default SQLite in the data directory.",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """ecuworks: the open workshop programming platform."""
    ctx.obj = {"home": home, "db": db}  # common.home() falls back to $ECUWORKS_HOME


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a number (use 18 or 0x12)") from None


@app.command()
def discover(
    host: Annotated[str, typer.Argument(help="Address of the vehicle's DoIP entity.")],
    port: Annotated[int, typer.Option(help="DoIP UDP port.")] = 13400,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for answers.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Ask one DoIP entity, by unicast, who it is (vehicle identification request)."""
    try:
        found = asyncio.run(discovery.identify(host, port, timeout=timeout))
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error
    except LinkError as error:
        raise fail(
            f"{error}. Is the vehicle interface connected at {host}?", EXIT_UNREACHABLE
        ) from error
    rows = [
        {
            "vin": a.vin,
            "logical_address": a.logical_address,
            "eid": a.eid.hex(),
            "gid": a.gid.hex(),
            "further_action": a.further_action,
        }
        for a in found
    ]
    if as_json:
        console.print_json(json.dumps({"schema": 1, "entities": rows}))
        return
    for row in rows:
        console.print(
            f"VIN {row['vin']}  address 0x{row['logical_address']:04X}  "
            f"EID {row['eid']}  GID {row['gid']}"
        )


@app.command()
def send(
    request: Annotated[str, typer.Argument(help="UDS request in hex, e.g. 22F190.")],
    vci: Annotated[str, typer.Option(help="doip://HOST:PORT, hsfz://HOST:PORT or can://IF/CH")],
    ecu: Annotated[str, typer.Option(help="ECU diagnostic address, e.g. 0x12.")],
    timeout: Annotated[float, typer.Option(help="P2: seconds to the first answer.")] = 1.0,
) -> None:
    """Send one raw UDS request to one ECU and print its answer (read-only use advised)."""
    try:
        payload = bytes.fromhex(request)
    except ValueError:
        raise fail(
            f"{request!r} is not hex; write the request as e.g. 22F190", EXIT_USAGE
        ) from None
    if not payload:
        raise fail("the request is empty; write it as hex, e.g. 22F190", EXIT_USAGE)
    target = _int(ecu)

    async def run() -> bytes:
        async with open_link(vci) as link:
            return await UdsClient(link, target, timing=Timing(p2=timeout)).request(payload)

    try:
        answer = asyncio.run(run())
    except (ConfigError, ParseError) as error:
        raise fail(str(error), EXIT_USAGE) from error
    except LinkError as error:
        raise fail(str(error), EXIT_UNREACHABLE) from error
    except UdsError as error:
        raise fail(str(error), 1) from error
    console.print(answer.hex(" ").upper())


@app.command()
def sim(  # noqa: PLR0917 -- Typer maps each option to a parameter
    vehicle: Annotated[
        str, typer.Option(help="f-series, g-series, e-series, or a profile TOML file.")
    ] = "f-series",
    host: Annotated[str, typer.Option(help="Loopback address to serve on.")] = "127.0.0.1",
    doip_port: Annotated[int, typer.Option(help="DoIP TCP+UDP port (0: any free).")] = 13400,
    hsfz_port: Annotated[int, typer.Option(help="HSFZ TCP port.")] = 6801,
    hsfz_udp_port: Annotated[int, typer.Option(help="HSFZ identification UDP port.")] = 6811,
    control_port: Annotated[int, typer.Option(help="HTTP control API port.")] = 8765,
    vci_port: Annotated[int, typer.Option(help="E-series D-CAN bridge (socketcand).")] = 29536,
    time_scale: Annotated[
        float, typer.Option(help="Divide every simulated duration by this.")
    ] = 1.0,
    size_scale: Annotated[
        float | None, typer.Option(help="Scale of the ECUs' image sizes (profile default).")
    ] = None,
    state: Annotated[
        Path | None, typer.Option(help="Keep the vehicle's state in this file between runs.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the ECUs' security seeds.")] = 0,
) -> None:
    """Run a simulated vehicle until stopped (Ctrl-C); prints one line 'ready ...'."""
    from ecuworks.sim.simulator import Simulator  # noqa: PLC0415 -- only this command needs it

    async def run() -> None:
        simulator = Simulator(
            vehicle,
            host=host,
            doip_port=doip_port,
            hsfz_port=hsfz_port,
            hsfz_udp_port=hsfz_udp_port,
            control_port=control_port,
            vci_port=vci_port,
            time_scale=time_scale,
            state_file=state,
            size_scale=size_scale,
            seed=seed,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with simulator:
            print(simulator.ready_line(), flush=True)
            await stop.wait()

    try:
        asyncio.run(run())
    except ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from error


def main() -> None:
    """Entry point of the ``ecuworks`` script."""
    app()
