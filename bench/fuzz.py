"""`make fuzz`: one million hypothesis inputs over the decoders and the simulator's servers.

Targets (``bench/fuzz_wire.py``, ``bench/fuzz_sim.py``): the wire codecs and stream framers,
both ISO-TP implementations, the simulated ECUs' UDS servers, and every socket of two
simulated cars over loopback. The total (``--inputs``, one million by default) is split by
each target's share: the in-process targets take most of it, the socket targets 20,000
each at the default, as one socket input costs about as much as a hundred decoded frames.

Hypothesis drives every target in generate-only mode (no database, no shrinking) in
chunks of at most :data:`CHUNK` examples, each chunk seeded from ``--seed``, the target's
name and the chunk's number: a run is repeated exactly by its seed, and memory stays flat.
Inputs are counted inside the test bodies, so the figures are inputs that ran, not
examples asked for. A failure prints the falsifying example and the command that replays
it; the run goes on with the next target and exits 1.

Writes ``bench/out/fuzz.json``: ``{"machine", "seed", "targets", "failures", "figures"}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from hypothesis import HealthCheck, Phase, given, seed, settings
from rich.console import Console
from rich.table import Table

from bench.common import figure, machine, print_goals
from bench.fuzz_sim import Garage, sim_targets
from bench.fuzz_wire import Target, wire_targets

__all__ = ["main", "plan", "run_target"]

ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_JSON: Final = ROOT / "bench" / "out" / "fuzz.json"
DEFAULT_INPUTS: Final = 1_000_000
DEFAULT_SEED: Final = 9
# Examples per hypothesis run: bounds the memory hypothesis keeps per run.
CHUNK: Final = 2_000
FIRST_CHUNK: Final = 50
# A chunk that executes nothing ends the target, so that a strategy hypothesis considers
# exhausted cannot loop forever; so does this many chunks.
MAX_CHUNKS: Final = 10_000


def targets(garage: Garage) -> list[Target]:
    """Every target, in the order they run."""
    return [*wire_targets(), *sim_targets(garage)]


def plan(chosen: list[Target], total: int | None) -> dict[str, int]:
    """Inputs per target: ``total`` split by share (``None``: each target's quick count).

    The shares of the chosen targets are scaled to add up to 1, so ``--only`` gives the
    chosen targets the whole total.
    """
    if total is None:
        return {t.name: t.quick for t in chosen}
    shares = sum(t.share for t in chosen)
    counts = {t.name: round(total * t.share / shares) for t in chosen}
    largest = max(chosen, key=lambda t: t.share)
    counts[largest.name] += total - sum(counts.values())
    return counts


def _chunk_seed(base: int, name: str, chunk: int) -> int:
    digest = hashlib.sha256(f"{base}:{name}:{chunk}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def run_target(
    target: Target, count: int, base_seed: int, console: Console
) -> tuple[int, float, list[dict[str, Any]]]:
    """Run ``target`` until ``count`` inputs have executed or it fails.

    Returns:
        (inputs executed, seconds, failures); a failure stops the target.
    """
    executed = 0
    failures: list[dict[str, Any]] = []
    started = time.perf_counter()
    examples_run = 0
    for chunk in range(MAX_CHUNKS):
        if executed >= count:
            break
        before = executed
        # Size the chunk by the inputs per example seen so far (a first, small chunk
        # measures it), so that the target stops close to its count.
        per_example = executed / examples_run if examples_run else 1.0
        cap = CHUNK if examples_run else FIRST_CHUNK
        examples = max(1, min(cap, math.ceil((count - executed) / per_example)))
        examples_run += examples

        def body(example: Any) -> None:
            nonlocal executed
            try:
                executed += target.run(example)
            except Exception as error:
                error.add_note(f"failing example: {example!r}")
                raise

        chunk_seed = _chunk_seed(base_seed, target.name, chunk)
        test: Callable[[], None] = seed(chunk_seed)(
            settings(
                max_examples=examples,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
                print_blob=False,
            )(given(target.strategy)(body))
        )
        try:
            test()
        except Exception as error:  # a finding: report it, replayable, and go on
            notes = "\n".join(getattr(error, "__notes__", []))
            failure = {
                "target": target.name,
                "chunk": chunk,
                "chunk_seed": chunk_seed,
                "error": f"{type(error).__name__}: {error}",
                "example": notes,
            }
            failures.append(failure)
            console.print(f"[red]{target.name}: {failure['error']}\n{notes}")
            break
        if executed == before:
            break
    return executed, time.perf_counter() - started, failures


def _replay_command(name: str, args: argparse.Namespace) -> str:
    size = "--quick" if args.quick else f"--inputs {args.inputs}"
    return f"python -m bench.fuzz --only '{name}' --seed {args.seed} {size}"


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; 1 if any target failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=DEFAULT_INPUTS, help="inputs in total")
    parser.add_argument("--quick", action="store_true", help="each target's small smoke count")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="replays a run exactly")
    parser.add_argument("--only", action="append", default=[], help="a target's name; repeatable")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write figures")
    args = parser.parse_args(argv)

    console = Console()
    # can-isotp logs every malformed frame it is fed at WARNING: here that is the point.
    logging.getLogger("isotp").setLevel(logging.ERROR)
    info = machine()
    garage = Garage()
    everything = targets(garage)
    unknown = set(args.only) - {t.name for t in everything}
    if unknown:
        parser.error(f"unknown target(s) {sorted(unknown)}; known: {[t.name for t in everything]}")
    chosen = [t for t in everything if not args.only or t.name in args.only]
    counts = plan(chosen, None if args.quick else args.inputs)
    estimate = sum(counts[t.name] / t.rate for t in chosen)
    console.print(
        f"fuzzing {sum(counts.values()):,} inputs over {len(chosen)} targets, seed {args.seed}; "
        f"estimate {estimate / 60:.1f} min on a quiet 2-core machine"
    )
    rows: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    try:
        for target in chosen:
            console.print(f"  {target.name}: {counts[target.name]:,} inputs ({target.what})")
            executed, seconds, failed = run_target(target, counts[target.name], args.seed, console)
            for failure in failed:
                failure["replay"] = _replay_command(target.name, args)
                console.print(f"[red]replay: {failure['replay']}")
            failures.extend(failed)
            rows.append(
                {
                    "target": target.name,
                    "what": target.what,
                    "planned": counts[target.name],
                    "inputs": executed,
                    "seconds": round(seconds, 3),
                    "inputs_per_s": round(executed / seconds, 1) if seconds else None,
                    "failures": len(failed),
                }
            )
    finally:
        garage.close()
    for problem in garage.problems():
        failures.append({"target": "simulators", "error": problem, "example": ""})
        console.print(f"[red]simulators: {problem}")

    table = Table("target", "inputs", "seconds", "inputs/s", "failures")
    for row in rows:
        table.add_row(
            row["target"],
            f"{row['inputs']:,}",
            f"{row['seconds']:.1f}",
            f"{row['inputs_per_s'] or 0:,.0f}",
            str(row["failures"]) if not row["failures"] else f"[red]{row['failures']}",
        )
    total = sum(r["inputs"] for r in rows)
    seconds = sum(r["seconds"] for r in rows)
    table.add_row(
        "total", f"{total:,}", f"{seconds:.1f}", f"{total / seconds:,.0f}", str(len(failures))
    )
    console.print(table)
    goal_inputs = sum(counts.values())
    figs = [
        figure("fuzz inputs", total, "inputs", f">= {goal_inputs}", digits=0),
        figure("fuzz crashes", len(failures), "crashes", "< 1", digits=0),
        figure("fuzz seconds", seconds, "s", digits=1),
        *(figure(f"fuzz inputs {r['target']}", r["inputs"], "inputs", digits=0) for r in rows),
    ]
    print_goals(console, info, figs, value_format="{:,.0f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "fuzz",
        "machine": info,
        "seed": args.seed,
        "targets": rows,
        "failures": failures,
        "figures": figs,
    }
    args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    console.print(f"figures written to {args.json}")
    return 1 if failures or total < goal_inputs else 0


if __name__ == "__main__":
    sys.exit(main())
