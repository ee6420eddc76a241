"""The long fault suite (``make faults``): break programming sessions, then count the damage.

``python -m bench.faults`` runs six scenarios against the simulated f-series car on
loopback, each a bounded number of runs with a per-run time limit, and prints one table:
runs, recovered, bricked ECUs, lost records, seconds. Every run starts from a fresh car
and a fresh workstation (data directory), so what it finds is its own.

1. **kills**: ``ecuworks program`` is SIGKILLed after a random line of its progress log,
   then ``ecuworks resume`` runs (``tests/execute/test_crash.py``, at 50 points).
2. **drops**: the simulator cuts the tester's connection after N bytes, N random within
   the plan's transfer (``POST /faults {"kind": "drop"}``); the session stops (exit 4) and
   ``resume`` finishes it.
3. **sags**: the battery drops below the pause threshold mid-flash, by unplugging the
   charger (``POST /battery``, plugged in again once the tester paused) or by a scripted
   sag (``{"kind": "sag"}``); the power guard pauses, the session completes.
4. **storms**: ``7F sid 78`` (response pending) and ``7F sid 21`` (busy, repeat request)
   answers injected at random requests of random ECUs over the whole session.
5. **restarts**: the simulator process (``ecuworks sim --state FILE``) is SIGKILLed
   mid-programming and started again on the same file and ports; ``resume`` finishes.
6. **outages**: the central backend (``ecuworks backend``) is SIGKILLed and restarted
   while the workstation's sync worker pushes history records.

After each run the car is judged from the simulator's ``/state`` and from identification
over the VCI (``tests/execute/crashing.py``): an ECU counts as **bricked** when it is not
in its application with the plan's target SVK. **Lost records**: history records missing
or doubled (one per session command that ended), journal actions without their Success,
and for the outages, events missing or doubled on the backend. A run **recovered** when
its session ended done and nothing was bricked or lost.

Each run draws from ``random.Random(f"{seed}/{scenario}/{run}")``: ``--seed S --only
NAME --run N`` replays one run. Exit 0 only if every run recovered; 1 otherwise, naming
each failed run. Results go to ``bench/out/faults.json`` (``--json PATH``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from bench.common import figure, machine
from bench.fault_runs import SCENARIOS, Verdict, Workbench
from ecuworks.pdata.source import DEMO_DIR, open_pdata

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "bench" / "out" / "faults.json"
DEFAULT_SEED: Final = 20261121
# Runs of each scenario by default (the counts; --quick makes each 1).
DEFAULT_COUNTS: Final = {
    "kills": 50,
    "drops": 20,
    "sags": 20,
    "storms": 1,
    "restarts": 10,
    "outages": 5,
}
# A run that takes longer than this counts as hung: a failure, never a wait without end.
RUN_LIMIT_S: Final = 240.0

console = Console(highlight=False, soft_wrap=True)


@dataclass
class Tally:
    """One scenario's runs, as the table and the JSON show them."""

    name: str
    runs: int = 0
    recovered: int = 0
    bricked: int = 0
    lost: int = 0
    seconds: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The scenario's entry of ``faults.json``."""
        return {
            "name": self.name,
            "runs": self.runs,
            "recovered": self.recovered,
            "bricked": self.bricked,
            "lost": self.lost,
            "seconds": round(self.seconds, 1),
            "failures": self.failures,
        }


async def run_scenario(
    bench: Workbench, name: str, count: int, seed: int, only_run: int | None
) -> Tally:
    """Every run of one scenario, one after the other, each within :data:`RUN_LIMIT_S`."""
    tally = Tally(name)
    one = SCENARIOS[name]
    for index in range(count):
        if only_run is not None and index != only_run:
            continue
        rng = random.Random(f"{seed}/{name}/{index}")
        started = time.monotonic()
        try:
            async with asyncio.timeout(RUN_LIMIT_S):
                verdict = await one(bench.fresh(f"{name}-{index}"), rng)
        except TimeoutError:
            verdict = _broken(f"no end within {RUN_LIMIT_S:g} s (hung)")
        except Exception as error:  # a check failed or the run broke: say what, go on
            verdict = _broken(_describe(error))
        seconds = time.monotonic() - started
        tally.runs += 1
        tally.seconds += seconds
        tally.bricked += len(verdict.bricked)
        tally.lost += len(verdict.lost)
        if verdict.recovered:
            tally.recovered += 1
        else:
            tally.failures.append(
                {
                    "run": index,
                    "seed": seed,
                    "replay": f"python -m bench.faults --seed {seed} --only {name} --run {index}",
                    "what": verdict.what,
                    "problems": verdict.problems,
                    "bricked": sorted(verdict.bricked),
                    "lost": verdict.lost,
                }
            )
        mark = "[green]ok" if verdict.recovered else "[red]FAILED"
        console.print(
            f"{name:<9} {index + 1:>3}/{count:<3} {mark}[/] {seconds:6.1f} s  {verdict.what}"
            + ("" if verdict.recovered else f"  {'; '.join(verdict.problems)[:300]}")
        )
    return tally


def _broken(why: str) -> Verdict:
    return Verdict(what="run broke", problems=[why], recovered=False)


def _describe(error: BaseException) -> str:
    where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    at = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
    return f"{type(error).__name__}: {error}{at}"


def print_table(tallies: list[Tally]) -> None:
    """The suite's table: one row per scenario, and the total."""
    table = Table("scenario", "runs", "recovered", "bricked ECUs", "lost records", "seconds")
    for t in tallies:
        style = "green" if t.recovered == t.runs and not (t.bricked or t.lost) else "red"
        table.add_row(
            t.name,
            str(t.runs),
            f"[{style}]{t.recovered}",
            f"[{'red' if t.bricked else 'green'}]{t.bricked}",
            f"[{'red' if t.lost else 'green'}]{t.lost}",
            f"{t.seconds:.1f}",
        )
    table.add_section()
    table.add_row(
        "total",
        str(sum(t.runs for t in tallies)),
        str(sum(t.recovered for t in tallies)),
        str(sum(t.bricked for t in tallies)),
        str(sum(t.lost for t in tallies)),
        f"{sum(t.seconds for t in tallies):.1f}",
    )
    console.print(table)


def figures(tallies: list[Tally]) -> list[dict[str, Any]]:
    """The figures the lead's report picks up: bricked and lost (goal: none), and runs."""
    runs = sum(t.runs for t in tallies)
    recovered = sum(t.recovered for t in tallies)
    out = [
        figure("faults bricked ECUs", sum(t.bricked for t in tallies), "ECUs", "< 1"),
        figure("faults lost records", sum(t.lost for t in tallies), "records", "< 1"),
        figure("faults runs not recovered", runs - recovered, "runs", "< 1"),
        figure("faults runs", runs, "runs"),
        figure("faults wall time", sum(t.seconds for t in tallies), "s", digits=1),
    ]
    out += [figure(f"faults {t.name} recovered", t.recovered, f"of {t.runs} runs") for t in tallies]
    return out


@contextlib.asynccontextmanager
async def workbench(work: Path) -> AsyncIterator[Workbench]:
    """Demo P-Data generated once; each run links it into a fresh data directory."""
    pdata_home = work / "pdata-home"
    pdata = await asyncio.to_thread(open_pdata, pdata_home)
    yield Workbench(root=work, demo=pdata_home / DEMO_DIR, pdata=pdata)


async def main_async(args: argparse.Namespace, counts: dict[str, int]) -> list[Tally]:
    """Run every scenario asked for, in the order of :data:`DEFAULT_COUNTS`."""
    tallies = []
    with tempfile.TemporaryDirectory(prefix="ecuworks-faults-") as work:
        async with workbench(Path(work)) as bench:
            for name, count in counts.items():
                if count > 0:
                    tallies.append(await run_scenario(bench, name, count, args.seed, args.run))
    return tallies


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, dict[str, int]]:
    """The options; the run counts by scenario."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.faults", description=__doc__.split("\n")[0]
    )
    for name, count in DEFAULT_COUNTS.items():
        parser.add_argument(
            f"--{name}",
            type=int,
            default=count,
            metavar="N",
            help=f"runs of {name} (default {count})",
        )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="seed of every run's random draws"
    )
    parser.add_argument(
        "--quick", action="store_true", help="one run of each scenario (smoke test)"
    )
    parser.add_argument(
        "--only",
        choices=sorted(DEFAULT_COUNTS),
        action="append",
        help="run only this scenario (repeatable)",
    )
    parser.add_argument(
        "--run",
        type=int,
        default=None,
        metavar="N",
        help="with --only: run only run N (replay a failure)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help=f"where to write the results (default {DEFAULT_JSON.relative_to(ROOT)})",
    )
    args = parser.parse_args(argv)
    counts = {name: (1 if args.quick else getattr(args, name)) for name in DEFAULT_COUNTS}
    if args.only:
        counts = {name: count for name, count in counts.items() if name in args.only}
    if args.run is not None:
        if not args.only:
            parser.error("--run N replays one run of the scenario named by --only")
        counts = {name: max(count, args.run + 1) for name, count in counts.items()}
    if any(count < 0 for count in counts.values()):
        parser.error("run counts must be 0 or more")
    return args, counts


def main(argv: list[str] | None = None) -> int:
    """Run the suite; 0 if every run recovered with nothing bricked or lost."""
    args, counts = parse_args(argv)
    info = machine()
    console.print(
        f"fault suite, seed {args.seed}: "
        + ", ".join(f"{count} {name}" for name, count in counts.items())
    )
    tallies = asyncio.run(main_async(args, counts))
    print_table(tallies)
    result = {
        "machine": info,
        "seed": args.seed,
        "scenarios": [t.to_json() for t in tallies],
        "figures": figures(tallies),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    failed = [(t, f) for t in tallies for f in t.failures]
    for tally, failure in failed:
        console.print(
            f"[red]{tally.name} run {failure['run']} (seed {failure['seed']}) failed:[/] "
            f"{'; '.join(failure['problems'])}\n  replay: {failure['replay']}"
        )
    console.print(f"results in {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
