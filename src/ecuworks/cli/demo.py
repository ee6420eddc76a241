"""``ecuworks demo``: the whole main job on a simulated vehicle, in one terminal.

Starts the simulated vehicle in-process on free loopback ports, then does what a
technician does: identify, plan to the latest I-level, try to program on the car's own
battery (the power guard refuses), connect the charger, program with progress bars, and
identify again to show the vehicle at its target. Exit 0 when it ends at the target.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from ecuworks.cli.common import EXIT_FAILED, console, errors, fail
from ecuworks.cli.pdata import load_pdata
from ecuworks.cli.program import run_guarded
from ecuworks.cli.progress_view import ProgressView, render_report
from ecuworks.errors import Refused
from ecuworks.execute.report import Report
from ecuworks.execute.reservation import Reservation, default_owner
from ecuworks.execute.runner import RunOptions
from ecuworks.execute.session import apply_plan, identify_vehicle, make_plan
from ecuworks.pdata.source import PData
from ecuworks.plan.model import Plan
from ecuworks.plan.render import render_plan
from ecuworks.sim.simulator import Simulator
from ecuworks.transport.url import open_link

__all__ = ["demo_command"]

_SCHEMES = {"f-series": "hsfz", "g-series": "doip"}


def _say(text: str) -> None:
    console.rule(text)


async def _demo(vehicle: str, time_scale: float, pdata: PData, journal_home: Path) -> bool:
    simulator = Simulator.on_free_ports(
        vehicle,
        time_scale=time_scale,
    )
    async with simulator:
        scheme = _SCHEMES.get(vehicle, "doip")
        url = f"{scheme}://127.0.0.1:{simulator.ports[scheme]}"
        _say(f"1. Identify the simulated {vehicle} at {url} (time scale {time_scale:g})")
        planned = await make_plan(url, pdata)
        ident, plan = planned.ident, planned.plan
        console.print(
            f"VIN {ident.vin}  I-level {plan.actual_ilevel}  battery "
            f"{ident.battery_volts or 0:.2f} V  {len(ident.ecus)} ECUs",
            highlight=False,
        )
        _say(f"2. Measures plan to the latest I-level, {plan.target_ilevel}")
        render_plan(plan)
        # The simulator's control port is also its VCI's management address.
        vci_admin = f"http://127.0.0.1:{simulator.ports['control']}"
        options = RunOptions(
            tester_present_s=min(1.5, 1.0 / time_scale),
            voltage_poll_s=0.2,
            reservation=Reservation(url=vci_admin, owner=default_owner()),
        )
        _say("3. Program on the car's own battery")
        try:
            options.power.check_start(ident.battery_volts)
        except Refused as refusal:
            errors.print(f"refused (exit 3): {refusal}", highlight=False, soft_wrap=True)
        _say(f"4. Charger connected; VCI reserved at {vci_admin}; program")
        simulator.set_battery(volts=None, charger=True)
        with ProgressView(plan) as view:
            report = await apply_plan(
                url, plan, pdata, journal_home, options=options, progress=view
            )
        render_report(report, plan, time_scale=time_scale)
        _say("5. Identify again")
        async with open_link(url) as link:
            after = await identify_vehicle(link, pdata)
        return _compare(plan, report, after.svt, str(after.ilevel.current if after.ilevel else "?"))


def _compare(plan: Plan, report: Report, svt: dict[int, list[str]], ilevel: str) -> bool:
    at_target = all(
        sorted(svt.get(address, [])) == sorted(units) for address, units in plan.target_svt.items()
    )
    console.print(
        f"I-level now {ilevel}; every ECU's SVK equals the plan's target: "
        f"{'yes' if at_target else 'NO'}",
        highlight=False,
    )
    return at_target and report.outcome == "done" and ilevel == plan.target_ilevel


def demo_command(
    ctx: typer.Context,
    vehicle: Annotated[str, typer.Option(help="f-series (HSFZ) or g-series (DoIP).")] = "f-series",
    time_scale: Annotated[float, typer.Option(help="Simulated seconds per real second.")] = 20.0,
) -> None:
    """Run the main job on a simulated vehicle: identify, plan, program, verify, report."""
    if time_scale <= 0:
        raise fail("--time-scale must be positive", 2)
    pdata = load_pdata(ctx)
    # The demo keeps its journal apart: a real session in the data directory stays as it is.
    with tempfile.TemporaryDirectory(prefix="ecuworks-demo-") as scratch:
        ok = run_guarded(_demo(vehicle, time_scale, pdata, Path(scratch)))
    if not ok:
        raise fail("the demo vehicle did not end at its target", EXIT_FAILED)
    console.print("Demo done: the vehicle is at its target I-level.", highlight=False)
