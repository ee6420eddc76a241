"""Identification benchmark: how long ``identify`` takes on a simulated G-series over DoIP.

``python -m bench.identify`` (part of ``make bench``) starts the g-series simulator (42
ECUs behind a DoIP gateway) in this process at time scale 1, so that the buses and the
ECUs' P2server keep real time, and runs :func:`ecuworks.vehicle.identify.identify` over a
fresh DoIP connection per round, the way ``ecuworks identify`` does:

1. **With P-Data** (goal): ``expected`` is the profile's ECU addresses, as the CLI takes
   them from P-Data; five rounds. The time runs from calling ``identify`` to its answer
   (VIN, VO, I-level triple, battery, every ECU's SVK and state); connecting and routing
   activation are shown beside it, not counted. Goal: the median < 1 s.
2. **Without P-Data** (informs): nothing is expected, so the vehicle-wide SVK read waits
   out :data:`~ecuworks.vehicle.identify.DISCOVERY_WINDOW` for late answers.
3. **One expected ECU silent** (informs): the DME ignores every request (a control API
   fault); it costs the discovery window plus one physical retry (``retry_timeout``).

The simulator shares the event loop and the CPU with the client, so the figures include
its work too: they are an upper bound of the client's. Every round is checked against the
simulator's state (ECU count, states, SVT, VIN); a wrong identification exits 1, speed never
does. Figures go to the terminal and to ``bench/out/identify.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.common import figure, machine, peak_rss_mb, print_goals
from ecuworks.profiles import load_profile
from ecuworks.sim.simulator import Simulator
from ecuworks.transport.url import open_link
from ecuworks.vehicle.identify import EcuMode, Identification, identify

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "bench" / "out" / "identify.json"

VEHICLE, HOST, TIME_SCALE = "g-series", "127.0.0.1", 1.0
ROUNDS, QUICK_ROUNDS = 5, 2
GOAL_S = 1.0
GOAL_NAME = "identify 40 ECUs over DoIP at time scale 1"
SILENT_ECU = 0x12  # the DME
TIMEOUT_S, RETRY_TIMEOUT_S = 2.0, 0.5  # identify's defaults, as the CLI passes them


async def one_round(
    sim: Simulator, expected: Iterable[int], silent: frozenset[int] = frozenset()
) -> dict[str, Any]:
    """Connect, identify, and check the answer against the simulator's state."""
    url = f"doip://{HOST}:{sim.ports['doip']}"
    start = time.perf_counter()
    async with open_link(url) as link:
        connected = time.perf_counter()
        ident = await identify(
            link, expected=expected, timeout=TIMEOUT_S, retry_timeout=RETRY_TIMEOUT_S
        )
        done = time.perf_counter()
    out: dict[str, Any] = {
        "identify_s": done - connected,
        "connect_s": connected - start,
        "ecus": len(ident.ecus),
    }
    wrong = check(sim, ident, silent)
    if wrong:
        out["error"] = wrong
    return out


def check(sim: Simulator, ident: Identification, silent: frozenset[int]) -> str | None:
    """What the identification got wrong, or None."""
    state = sim.state
    if ident.vin != state.vin:
        return f"VIN {ident.vin} instead of {state.vin}"
    if ident.ilevel is None or ident.vo is None or ident.battery_volts is None:
        return f"gateway data missing: {list(ident.notes)}"
    want_states = {
        a: EcuMode.NOT_ANSWERING if a in silent else EcuMode.APPLICATION for a in state.ecus
    }
    got_states = {e.address: e.state for e in ident.ecus}
    if got_states != want_states:
        diff = sorted(a for a in want_states.keys() | got_states.keys() if a not in silent)
        bad = [a for a in diff if got_states.get(a) != want_states.get(a)]
        return "ECU states differ at " + ", ".join(f"0x{a:02X}" for a in bad or diff)
    want_svt = {a: ecu.svk for a, ecu in state.ecus.items() if a not in silent}
    if ident.svt != want_svt:
        return "the SVT differs from the simulator's"
    return None


async def control(sim: Simulator, method: str, path: str, body: Any = None) -> None:
    """One call of the simulator's control API."""
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{sim.ports['control']}") as client:
        (await client.request(method, path, json=body)).raise_for_status()


async def run_all(rounds: int) -> dict[str, Any]:
    """Every scenario against one simulator."""
    expected = sorted(e.address for e in load_profile(VEHICLE).ecus)
    sim = Simulator.on_free_ports(
        VEHICLE,
        time_scale=TIME_SCALE,
    )
    await sim.start()
    try:
        await one_round(sim, expected)  # warm-up: imports, first connection
        with_pdata = [await one_round(sim, expected) for _ in range(rounds)]
        without_pdata = [await one_round(sim, ()) for _ in range(max(1, rounds // 2))]
        await control(sim, "POST", "/faults", {"kind": "silence", "ecu": SILENT_ECU})
        silent = frozenset({SILENT_ECU})
        one_silent = [await one_round(sim, expected, silent) for _ in range(max(1, rounds // 2))]
        await control(sim, "DELETE", "/faults")
    finally:
        await sim.stop()
    return {
        "vehicle": VEHICLE,
        "time_scale": TIME_SCALE,
        "ecus": len(expected),
        "scenarios": {
            "with P-Data": with_pdata,
            "without P-Data": without_pdata,
            "one expected ECU silent": one_silent,
        },
    }


def figures(runs: dict[str, Any]) -> list[dict[str, Any]]:
    """The goal figure (median with P-Data) and the informing ones."""
    figs: list[dict[str, Any]] = []
    for name, rows in runs["scenarios"].items():
        times = [r["identify_s"] for r in rows if "error" not in r]
        median = statistics.median(times) if times else None
        best = min(times) if times else None
        if name == "with P-Data":
            figs.append(figure(GOAL_NAME, median, "s", f"< {GOAL_S:g}"))
            figs.append(figure(f"{GOAL_NAME}, best", best, "s"))
        else:
            figs.append(figure(f"identify {name}, median", median, "s"))
    figs.append(figure("peak RSS tester and simulator (one process)", peak_rss_mb(), "MB"))
    return figs


def report(runs: dict[str, Any], figs: list[dict[str, Any]], info: dict[str, Any]) -> None:
    """Print the rounds and the goals."""
    console = Console()
    console.print(
        f"{runs['vehicle']}: {runs['ecus']} ECUs over DoIP at time scale {runs['time_scale']:g}"
        f" on {info['cpu']} ({info['cores']} cores)"
    )
    table = Table("scenario", "rounds", "median s", "best s", "connect s", "ECUs", "check")
    for name, rows in runs["scenarios"].items():
        ok = [r for r in rows if "error" not in r]
        errors = sorted({r["error"] for r in rows if "error" in r})
        times = [r["identify_s"] for r in ok]
        table.add_row(
            name,
            str(len(rows)),
            f"{statistics.median(times):.3f}" if times else "-",
            f"{min(times):.3f}" if times else "-",
            f"{statistics.median(r['connect_s'] for r in rows):.3f}",
            ", ".join(sorted({str(r["ecus"]) for r in rows})),
            "[red]" + "; ".join(errors) if errors else "ok",
        )
    console.print(table)
    print_goals(console, info, figs, also=("identify",), value_format="{:.3f}")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; 0 unless an identification came out wrong."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROUNDS} rounds (smoke test)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write figures")
    args = parser.parse_args(argv)

    info = machine()  # before the run, so that the load average is other processes' load
    runs = asyncio.run(run_all(QUICK_ROUNDS if args.quick else ROUNDS))
    figs = figures(runs)
    report(runs, figs, info)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": "identify", "machine": info, **runs, "figures": figs}
    args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(f"figures written to {args.json}")
    rows = [r for scenario in runs["scenarios"].values() for r in scenario]
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
