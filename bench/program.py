"""Programming benchmark: a whole f-series vehicle against the plan's lower bound.

``python -m bench.program`` (part of ``make bench``) starts the f-series simulator (HSFZ
gateway, ECUs on several buses) in this process, connects the charger, plans the vehicle to
the latest I-level with the demo P-Data and executes the plan with
:func:`ecuworks.execute.session.apply_plan`, each run on a fresh simulator (programming
changes the car) with a fresh journal:

1. **Parallel** (the default ``max_parallel``) at time scales 2, 5 and 10. The simulated
   wall time is ``report.wall_s`` times the time scale; it is compared with the plan's lower bound
   (simulated seconds). At a low scale simulated time dominates the client's real
   overhead; at a high scale the overhead shows. Goal (at the lowest scale): simulated wall
   <= 1.15 times the lower bound.
2. **Serial** (``max_parallel=1``: one ECU at a time) at the lowest scale. Goal: serial
   simulated wall at least 3 times the parallel one.
3. The **g-series** car (DoIP, 42 ECUs) parallel and serial at scale 5, for comparison:
   no goal. Its head unit bounds it as on the f-series, but more ECUs share the rest.

Tester present comes every simulated second at most (the ECUs' S3 timeout is 5 simulated
seconds); the battery is read every half real second (the runner's default: polled
faster, the poll races the final check's reads of the gateway). For the parallel run at
the goal scale, each ECU's job (real seconds times the scale) is compared with its slot
in ``plan.schedule``; the five with the largest excess say whether the plan's model or the
executor is off.

``--quick`` runs both at scale 20 only (smoke test). Figures go to the terminal and to
``bench/out/program.json``. Speed never fails the run; exit 1 means a run did not end
``done``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.common import figure, machine, peak_rss_mb, print_goals
from ecuworks.execute.progress import Kind, Progress
from ecuworks.execute.runner import RunOptions
from ecuworks.execute.session import apply_plan, make_plan
from ecuworks.pdata.source import PData, open_pdata
from ecuworks.sim.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "bench" / "out" / "program.json"

VEHICLE, HOST = "f-series", "127.0.0.1"
SCALES, QUICK_SCALES = (2.0, 5.0, 10.0), (20.0,)
OTHER_VEHICLE, OTHER_SCALE = "g-series", 5.0
RATIO_GOAL, SPEEDUP_GOAL = 1.15, 3.0
PROFILE_TOP = 5


def options(scale: float, max_parallel: int | None) -> RunOptions:
    """Run options for a simulator ``scale`` times faster than real time."""
    base = RunOptions()
    return RunOptions(
        tester_present_s=min(base.tester_present_s, 1.0 / scale),
        voltage_poll_s=base.voltage_poll_s,
        max_parallel=base.max_parallel if max_parallel is None else max_parallel,
    )


async def one_run(
    pdata: PData, scale: float, max_parallel: int | None, vehicle: str = VEHICLE
) -> dict[str, Any]:
    """Plan and program a fresh simulated vehicle; every time in simulated seconds unless
    the key ends in ``real_s``."""
    sim = Simulator.on_free_ports(vehicle, time_scale=scale)
    await sim.start()
    events: list[tuple[float, Progress]] = []
    try:
        sim.set_battery(volts=None, charger=True)
        transport = "hsfz" if "hsfz" in sim.ports else "doip"
        url = f"{transport}://{HOST}:{sim.ports[transport]}"
        plan = (await make_plan(url, pdata)).plan
        opts = options(scale, max_parallel)
        with tempfile.TemporaryDirectory(prefix="bench-program-") as journal_home:
            start = time.perf_counter()
            report = await apply_plan(
                url,
                plan,
                pdata,
                Path(journal_home),
                options=opts,
                progress=lambda p: events.append((time.perf_counter(), p)),
            )
            total = time.perf_counter() - start
        state = sim.state_json()
    finally:
        await sim.stop()
    if report.outcome != "done":
        raise RuntimeError(f"outcome {report.outcome}: {'; '.join(report.mismatches)}")
    if state["ilevel"]["current"] != plan.target_ilevel:
        raise RuntimeError(f"the car is at {state['ilevel']['current']}, not the target")

    dominating = max(plan.lower_bound_terms.items(), key=lambda kv: kv[1], default=("-", 0.0))
    return {
        "vehicle": vehicle,
        "scale": scale,
        "max_parallel": opts.max_parallel,
        "wall_real_s": report.wall_s,
        "apply_real_s": total,
        "wall_s": report.wall_s * scale,
        "estimate_s": plan.estimate_s,
        "lower_bound_s": plan.lower_bound_s,
        "ratio": report.wall_s * scale / plan.lower_bound_s,
        "dominating_term": {"name": dominating[0], "seconds": dominating[1]},
        "critical_path": list(plan.critical_path),
        "ecus": len(report.ecus),
        "bytes_sent": report.bytes_sent,
        "excess": excess(plan, report, events, scale),
    }


def excess(
    plan: Any, report: Any, events: list[tuple[float, Progress]], scale: float
) -> list[dict[str, Any]]:
    """Each ECU's job against its schedule slot, in simulated seconds, largest excess first.

    Actual starts are taken from the progress events, relative to the first event (the first
    vehicle-wide step, right after the session's clock started).
    """
    t0 = events[0][0] if events else 0.0
    started = {
        p.ecu: (t - t0) * scale
        for t, p in events
        if p.kind is Kind.ECU and p.status == "Started" and p.ecu is not None
    }
    ended = {
        p.ecu: (t - t0) * scale
        for t, p in events
        if p.kind is Kind.ECU and p.status == "Success" and p.ecu is not None
    }
    slots = {s.ecu: s for s in plan.schedule}
    rows = []
    for ecu in report.ecus:
        slot = slots.get(ecu.ecu)
        if slot is None:
            continue
        actual = ecu.seconds * scale
        planned = slot.end_s - slot.start_s
        rows.append(
            {
                "ecu": ecu.ecu,
                "name": ecu.name,
                "bus": slot.bus,
                "planned_start_s": slot.start_s,
                "planned_s": planned,
                "start_s": started.get(ecu.ecu),
                "end_s": ended.get(ecu.ecu),
                "actual_s": actual,
                "excess_s": actual - planned,
                "end_late_s": None if ecu.ecu not in ended else ended[ecu.ecu] - slot.end_s,
            }
        )
    rows.sort(key=lambda r: -r["excess_s"])
    return rows


async def run_all(scales: tuple[float, ...], home: Path, *, other: bool) -> dict[str, Any]:
    """The parallel runs at every scale, then the serial run at the lowest; with ``other``,
    the other vehicle's parallel and serial runs."""
    start = time.perf_counter()
    pdata = open_pdata(home)  # generates the demo P-Data once; every run reuses it
    pdata_s = time.perf_counter() - start
    runs: list[dict[str, Any]] = []
    plan_runs = [(VEHICLE, s, None) for s in scales] + [(VEHICLE, min(scales), 1)]
    if other:
        plan_runs += [(OTHER_VEHICLE, OTHER_SCALE, None), (OTHER_VEHICLE, OTHER_SCALE, 1)]
    for vehicle, scale, parallel in plan_runs:
        kind = "serial" if parallel == 1 else "parallel"
        try:
            row = await one_run(pdata, scale, parallel, vehicle)
        except Exception as exc:  # reported; the bench exits 1
            traceback.print_exc()
            row = {"vehicle": vehicle, "scale": scale, "error": f"{type(exc).__name__}: {exc}"}
        runs.append({"kind": kind, **row})
    return {"vehicle": VEHICLE, "pdata_s": pdata_s, "goal_scale": min(scales), "runs": runs}


def _find(
    runs: dict[str, Any], kind: str, scale: float, vehicle: str = VEHICLE
) -> dict[str, Any] | None:
    return next(
        (
            r
            for r in runs["runs"]
            if (r["kind"], r["scale"], r.get("vehicle", VEHICLE)) == (kind, scale, vehicle)
            and "error" not in r
        ),
        None,
    )


def figures(runs: dict[str, Any]) -> list[dict[str, Any]]:
    """The two goals at the goal scale, then the informing figures."""
    scale = runs["goal_scale"]
    par, ser = _find(runs, "parallel", scale), _find(runs, "serial", scale)
    ratio = par["ratio"] if par else None
    speedup = ser["wall_s"] / par["wall_s"] if par and ser else None
    figs = [
        figure(
            f"whole vehicle / lower bound at scale {scale:g}",
            ratio,
            "x",
            f"<= {RATIO_GOAL:g}",
            met=ratio is not None and ratio <= RATIO_GOAL,
        ),
        figure(f"serial / parallel at scale {scale:g}", speedup, "x", f">= {SPEEDUP_GOAL:g}"),
    ]
    if par:
        figs += [
            figure(f"parallel wall at scale {scale:g}", par["wall_real_s"], "s"),
            figure(f"parallel simulated wall at scale {scale:g}", par["wall_s"], "s"),
            figure("plan estimate", par["estimate_s"], "s"),
            figure("plan lower bound", par["lower_bound_s"], "s"),
        ]
    if ser:
        figs.append(figure(f"serial simulated wall at scale {scale:g}", ser["wall_s"], "s"))
    figs.append(figure("peak RSS tester and simulator (one process)", peak_rss_mb(), "MB"))
    for row in runs["runs"]:
        other = row.get("vehicle", VEHICLE) != VEHICLE
        if row["kind"] == "parallel" and row["scale"] != scale and not other and "error" not in row:
            figs.append(
                figure(f"whole vehicle / lower bound at scale {row['scale']:g}", row["ratio"], "x")
            )
    par, ser = (_find(runs, k, OTHER_SCALE, OTHER_VEHICLE) for k in ("parallel", "serial"))
    if par and ser:
        figs += [
            figure(
                f"{OTHER_VEHICLE} serial / parallel at scale {OTHER_SCALE:g}",
                ser["wall_s"] / par["wall_s"],
                "x",
            ),
            figure(
                f"{OTHER_VEHICLE} whole vehicle / lower bound at scale {OTHER_SCALE:g}",
                par["ratio"],
                "x",
            ),
        ]
    return figs


def report(runs: dict[str, Any], figs: list[dict[str, Any]], info: dict[str, Any]) -> None:
    """Print the runs, the profile of the goal run, and the goals."""
    console = Console()
    console.print(
        f"{runs['vehicle']} over HSFZ, whole vehicle to the latest I-level, on {info['cpu']} "
        f"({info['cores']} cores); times in simulated seconds unless 'real'"
    )
    table = Table(
        "run", "scale", "real s", "simulated s", "estimate s", "lower bound s", "wall / bound"
    )
    for row in runs["runs"]:
        name = row["kind"]
        if row.get("vehicle", VEHICLE) != VEHICLE:
            name = f"{row['vehicle']} {name}"
        if "error" in row:
            table.add_row(name, f"{row['scale']:g}", "[red]" + row["error"], *[""] * 4)
            continue
        table.add_row(
            name,
            f"{row['scale']:g}",
            f"{row['wall_real_s']:.2f}",
            f"{row['wall_s']:.2f}",
            f"{row['estimate_s']:.2f}",
            f"{row['lower_bound_s']:.2f}",
            f"{row['ratio']:.3f}",
        )
    console.print(table)
    par = _find(runs, "parallel", runs["goal_scale"])
    if par:
        term = par["dominating_term"]
        console.print(
            f"lower bound dominated by '{term['name']}' ({term['seconds']:.2f} s); critical "
            f"path: {' → '.join(par['critical_path'])}"
        )
        profile = Table(
            "ECU",
            "bus",
            "planned start",
            "start",
            "planned s",
            "actual s",
            "excess s",
            "ends late s",
            title=f"the {PROFILE_TOP} ECUs with the largest excess over their slot "
            f"(parallel, scale {runs['goal_scale']:g})",
        )
        for r in par["excess"][:PROFILE_TOP]:
            profile.add_row(
                f"0x{r['ecu']:02X} {r['name']}",
                r["bus"],
                f"{r['planned_start_s']:.2f}",
                "-" if r["start_s"] is None else f"{r['start_s']:.2f}",
                f"{r['planned_s']:.2f}",
                f"{r['actual_s']:.2f}",
                f"{r['excess_s']:+.2f}",
                "-" if r["end_late_s"] is None else f"{r['end_late_s']:+.2f}",
            )
        console.print(profile)
    print_goals(console, info, figs, also=("whole vehicle", OTHER_VEHICLE), value_format="{:.3f}")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; 0 unless a run did not end ``done``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="scale 20 only (smoke test)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write figures")
    parser.add_argument("--home", type=Path, help="P-Data home to reuse (default: a temporary one)")
    args = parser.parse_args(argv)

    info = machine()  # before the run, so that the load average is other processes' load
    scales = QUICK_SCALES if args.quick else SCALES
    with tempfile.TemporaryDirectory(prefix="bench-program-home-") as tmp:
        runs = asyncio.run(run_all(scales, args.home or Path(tmp), other=not args.quick))
    figs = figures(runs)
    report(runs, figs, info)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": "program", "machine": info, **runs, "figures": figs}
    args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(f"figures written to {args.json}")
    failed = [r for r in runs["runs"] if "error" in r]
    if failed:
        Console().print(f"[red]{len(failed)} run(s) did not end done: see above")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
