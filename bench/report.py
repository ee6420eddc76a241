"""One benchmark report: every figure of ``make bench`` beside its goal, with plots.

``python -m bench.report --run`` (what ``make bench`` does) runs every benchmark, each in a
process of its own and one after the other so that they do not share the two cores, then
reads their ``bench/out/<name>.json`` and writes:

- ``bench/report.json``: the machine, when each benchmark ran and whether it ended well,
  and ``figures``, a list of ``{"benchmark", "name", "value", "unit", "goal", "met"}``;
- ``bench/report.md``: the goals first, then one section per benchmark with its figures
  and the peers measured in the same run, then every peak RSS;
- ``bench/plots/*.png``: the pictures the sections link to.

Without ``--run`` it only rebuilds the report from the JSON already there. Speed never
fails it: the exit code is 1 only when a benchmark did not finish (it crashed, or a run sent
or stored wrong data), and the report then says which.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.common import machine

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"  # out/*.json in it are read; report.md, report.json, plots/ written
RSS_GOAL_MB = 150.0  # the issues' memory goal for a download and a P-Data sync


@dataclass(frozen=True)
class Bench:
    """One benchmark module of ``make bench``."""

    name: str  # bench.<name>, and bench/out/<name>.json
    title: str
    about: str  # what it measures, against what (one paragraph of the report)


BENCHES = (
    Bench(
        "transfer",
        "DoIP TransferData throughput per ECU",
        "One ECU's download (`34`, `36` x n, `37`) over DoIP on loopback at 4 KiB and 64 KiB "
        "blocks, by ecuworks, by stock doipclient + udsoncan, and by a raw socket client (the "
        "floor: headers packed with `struct`, nothing else), all against the same test server "
        "in its own process, three rounds each in fresh processes, the fastest counted.",
    ),
    Bench(
        "sim",
        "CAN against the ISO-TP ceiling; the simulator's Ethernet",
        "ecuworks' client programs one region of a simulated ECU. On CAN the measured time is "
        "compared with the ISO-TP arithmetic for the ECU's own parameters (bit rate, block "
        "size, STmin, frame gaps): the ceiling no tester can beat on that bus. On Ethernet "
        "the simulator's own cost per block is measured against its timing model.",
    ),
    Bench(
        "identify",
        "Identify a whole vehicle",
        "Identification (VIN, vehicle order, I-level, battery, every ECU's SVK) of the "
        "simulated f-series car over HSFZ, with and without P-Data.",
    ),
    Bench(
        "program",
        "The whole vehicle against its lower bound and one ECU at a time",
        "The f-series car programmed to the newest I-level by the plan's parallel schedule, "
        "against the plan's lower bound (the longest bus or chain of ECUs, which no schedule "
        "can beat) and against the same plan executed one ECU at a time. Simulated seconds.",
    ),
    Bench(
        "plan",
        "The measures plan at scale",
        "`build_plan` for cars of 10 to 160 ECUs against catalogs of 62.5 hardware variants "
        "per ECU (5,000 at 80 ECUs), each run with a fresh catalog so that its indexes are "
        "timed too.",
    ),
    Bench(
        "pdata",
        "P-Data sync and verify",
        "A TUF-signed P-Data repository served over HTTP on loopback: a workstation syncs it "
        "(every signature and hash checked) and streams a unit; the demo repository is "
        "generated and verified.",
    ),
    Bench(
        "ingest",
        "Backend history ingest",
        "20 workstations push their history to the central backend at once, into PostgreSQL "
        "and into SQLite; every event is checked stored once, in its chain.",
    ),
)


# -- running -----------------------------------------------------------------------------------


def run_benchmarks(
    base: Path, benches: Sequence[Bench], quick: bool, console: Console
) -> dict[str, Any]:
    """Run each benchmark in its own process; what each exit code and duration was."""
    runs: dict[str, Any] = {}
    (base / "out").mkdir(parents=True, exist_ok=True)
    for bench in benches:
        out = base / "out" / f"{bench.name}.json"
        out.unlink(missing_ok=True)  # a crash must not leave the previous run's figures
        command = [sys.executable, "-m", f"bench.{bench.name}", "--json", str(out)]
        if quick:
            command.append("--quick")  # every benchmark has it: its smoke-test sizes
        console.rule(f"[bold]{bench.title}[/] (python -m bench.{bench.name})")
        start = time.monotonic()
        code = subprocess.call(command, cwd=ROOT)
        runs[bench.name] = {
            "exit": code,
            "seconds": round(time.monotonic() - start, 1),
            "quick": quick,
        }
    return runs


# -- reading -----------------------------------------------------------------------------------


def load(base: Path, bench: Bench) -> dict[str, Any] | None:
    """A benchmark's JSON; None when it has not run, ``{"unreadable": why}`` when what it
    left cannot be read."""
    path = base / "out" / f"{bench.name}.json"
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"unreadable": f"{path}: {exc}"}
    if not isinstance(document, dict) or not isinstance(document.get("figures"), list):
        return {"unreadable": f"{path}: no list of figures in it"}
    document["ran_at"] = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).isoformat(
        timespec="seconds"
    )
    return document


def figures_of(name: str, document: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The benchmark's figures, each tagged with the benchmark's name."""
    if document is None:
        return []
    return [{"benchmark": name, **f} for f in document.get("figures", [])]


def trouble(
    name: str, runs: dict[str, Any], documents: dict[str, dict[str, Any] | None]
) -> str | None:
    """Why a benchmark's figures cannot be trusted (None when they can, or it did not run)."""
    document, run = documents[name], runs.get(name)
    if run and run["exit"] != 0:
        return f"exit {run['exit']}"
    if document is not None and "unreadable" in document:
        return f"unreadable: {document['unreadable']}"
    if run and document is None:
        return "wrote no figures"
    return None


def find(figs: list[dict[str, Any]], name: str) -> float | None:
    """The value of the figure called ``name`` (None if missing)."""
    return next((f["value"] for f in figs if f["name"] == name), None)


# -- plots -------------------------------------------------------------------------------------


def plots(
    base: Path, documents: dict[str, dict[str, Any] | None], figs: list[dict[str, Any]]
) -> dict[str, str]:
    """Draw the plots the data allows; ``{section: relative path of its PNG}``."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no screen here
    import matplotlib.pyplot as plt

    (base / "plots").mkdir(parents=True, exist_ok=True)
    drawn: dict[str, str] = {}

    def save(section: str, fig: Any) -> None:
        path = base / "plots" / f"{section}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        drawn[section] = f"plots/{section}.png"  # relative to report.md

    by = {b: [f for f in figs if f["benchmark"] == b] for b in documents}

    clients = ("raw", "ecuworks", "doipclient")
    rates = {
        block: [find(by["transfer"], f"{c} {block} throughput") for c in clients]
        for block in ("4 KiB", "64 KiB")
    }
    if all(v is not None for vs in rates.values() for v in vs):
        fig, ax = plt.subplots(figsize=(7, 3.6))
        width = 0.27
        for i, client in enumerate(clients):
            xs = [j + (i - 1) * width for j in range(len(rates))]
            values = [rates[block][i] or 0.0 for block in rates]
            bars = ax.bar(xs, values, width, label=client)
            ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.set_xticks(range(len(rates)), [f"{b} blocks" for b in rates])
        ax.set_yscale("log")
        ax.set_ylabel("MiB/s (log scale)")
        ax.set_title("One ECU's download over DoIP on loopback")
        ax.legend()
        save("transfer", fig)

    can = [r for r in (documents.get("sim") or {}).get("can", []) if "error" not in r]
    if can and all("mib_s" in r and "model_mib_s" in r for r in can):
        fig, ax = plt.subplots(figsize=(7, 3.6))
        xs = list(range(len(can)))
        ax.bar(
            [x - 0.2 for x in xs],
            [r["model_mib_s"] * 1024 for r in can],
            0.4,
            label="ISO-TP ceiling for the ECU's parameters",
            color="#888888",
        )
        bars = ax.bar(
            [x + 0.2 for x in xs], [r["mib_s"] * 1024 for r in can], 0.4, label="ecuworks, measured"
        )
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.set_xticks(xs, [_can_label(r) for r in can], fontsize=8)
        ax.set_ylabel("KiB/s")
        ax.set_title("CAN download throughput against the ISO-TP ceiling")
        ax.legend(fontsize=8)
        save("sim", fig)

    program = by["program"]
    scale = (documents.get("program") or {}).get("goal_scale")
    if scale is not None:
        bars_of = {
            "lower bound": find(program, "plan lower bound"),
            "plan estimate": find(program, "plan estimate"),
            "ecuworks parallel": find(program, f"parallel simulated wall at scale {scale:g}"),
            "one ECU at a time": find(program, f"serial simulated wall at scale {scale:g}"),
        }
        shown = {k: v for k, v in bars_of.items() if v is not None}
        if len(shown) > 1:
            fig, ax = plt.subplots(figsize=(7, 3.4))
            colours = ["#888888", "#bbbbbb", "#1f77b4", "#d62728"]
            bars = ax.barh(list(shown), list(shown.values()), color=colours[: len(shown)])
            ax.bar_label(bars, fmt="%.1f s", fontsize=8)
            ax.invert_yaxis()
            ax.margins(x=0.12)  # room for the last label
            ax.set_xlabel("simulated seconds")
            ax.set_title("The whole f-series car to the newest I-level")
            save("program", fig)

    sizes = (documents.get("plan") or {}).get("sizes", [])
    if sizes:
        fig, ax = plt.subplots(figsize=(6, 3.4))
        ax.plot([r["ecus"] for r in sizes], [r["median_ms"] for r in sizes], marker="o")
        for r in sizes:
            ax.annotate(f"{r['median_ms']:.1f}", (r["ecus"], r["median_ms"]), fontsize=8)
        ax.axhline(100, color="#d62728", linestyle="--", label="goal at 80 ECUs: < 100 ms")
        ax.set_xlabel("ECUs in the car (catalog: 62.5 variants per ECU)")
        ax.set_ylabel("ms (median)")
        ax.set_title("Measures plan time at scale")
        ax.legend()
        save("plan", fig)

    rss = [f for f in figs if "peak RSS" in f["name"] and f["value"] is not None]
    if rss:
        fig, ax = plt.subplots(figsize=(8, 0.9 + 0.32 * len(rss)))
        labels = [f"{f['benchmark']}: {f['name'].replace('peak RSS', '').strip()}" for f in rss]
        bars = ax.barh(labels, [f["value"] for f in rss])
        ax.bar_label(bars, fmt="%.0f MB", fontsize=7)
        ax.axvline(
            RSS_GOAL_MB,
            color="#d62728",
            linestyle="--",
            label=f"{RSS_GOAL_MB:g} MB: the goal of a download and of a P-Data sync",
        )
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=7)
        ax.margins(x=0.1)
        ax.set_xlabel("peak resident set size, MB")
        ax.legend(fontsize=8)
        save("rss", fig)
    return drawn


def _can_label(row: dict[str, Any]) -> str:
    return (
        f"{row['ecu']} on {row['bus']}, {row['bitrate'] // 1000} kbit/s\n"
        f"STmin {row['stmin_ms']:g} ms, {row['size'] // 1024} KiB"
    )


# -- writing -----------------------------------------------------------------------------------


def _value(f: dict[str, Any]) -> str:
    if f["value"] is None:
        return "—"
    value = f["value"]
    text = (
        f"{value:,.0f}"
        if abs(value) >= 1000
        else f"{value:.3f}"
        if abs(value) < 10
        else f"{value:,.1f}"
    )
    return f"{text} {f['unit']}"


def _met(f: dict[str, Any]) -> str:
    return "" if f["met"] is None else "yes" if f["met"] else "**no**"


def _table(rows: list[dict[str, Any]], *, with_bench: bool = False) -> list[str]:
    head = ("benchmark | " if with_bench else "") + "figure | value | goal | met"
    lines = [f"| {head} |", "|" + "---|" * (head.count("|") + 1)]
    for f in rows:
        cells = [f["benchmark"]] if with_bench else []
        cells += [f["name"], _value(f), f["goal"] or "", _met(f)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(
    info: dict[str, Any],
    documents: dict[str, dict[str, Any] | None],
    runs: dict[str, Any],
    figs: list[dict[str, Any]],
    drawn: dict[str, str],
) -> str:
    """The report as Markdown."""
    goals = [f for f in figs if f["goal"] is not None]
    met = sum(1 for f in goals if f["met"])
    lines = [
        "# ecuworks benchmark report",
        "",
        f"Written {info['written']} by `make bench` (`python -m bench.report --run`) on "
        f"{info['cpu']}, {info['cores']} cores, Python {info['python']}, load average "
        f"{', '.join(f'{x:g}' for x in info['load_average'])} before the run.",
        "Every peer is measured in the same run as ecuworks, so compare the ratios. "
        "Figures depend on the machine and its load; `bench/README.md` says how each is "
        "measured. Speed never fails `make bench`.",
        "",
        f"**{met} of {len(goals)} goals met.**",
        "",
    ]
    failed = {b.name: why for b in BENCHES if (why := trouble(b.name, runs, documents))}
    if failed:
        lines += [
            "**Did not finish:** "
            + ", ".join(f"`bench.{name}` ({why})" for name, why in failed.items())
            + ". Its figures are missing or were not checked; see its output.",
            "",
        ]
    lines += ["## Goals", "", *_table(goals, with_bench=True), ""]
    for bench in BENCHES:
        document = documents[bench.name]
        lines += [f"## {bench.title}", "", bench.about, ""]
        if document is None or "unreadable" in document:
            why = trouble(bench.name, runs, documents) or f"no `out/{bench.name}.json`"
            lines += [f"Not run: {why}.", ""]
            continue
        run = runs.get(bench.name)
        when = f"Ran {document['ran_at']}"
        if run:
            when += f" in {run['seconds']:g} s" + (" (quick)" if run["quick"] else "")
        lines += [when + f"; `python -m bench.{bench.name}`.", ""]
        if bench.name in drawn:
            lines += [f"![{bench.title}]({drawn[bench.name]})", ""]
        lines += [*_table([f for f in figs if f["benchmark"] == bench.name]), ""]
    rss = [f for f in figs if "peak RSS" in f["name"]]
    lines += [
        "## Peak RSS of each",
        "",
        "Peak resident set size (10^6 bytes) of each process the benchmarks measured; a "
        "Python interpreter alone takes about 28 MB.",
        "",
    ]
    if "rss" in drawn:
        lines += [f"![peak RSS]({drawn['rss']})", ""]
    lines += [*_table(rss, with_bench=True), ""]
    return "\n".join(lines)


def _with_earlier_runs(
    base: Path, runs: dict[str, Any], documents: dict[str, dict[str, Any] | None]
) -> dict[str, Any]:
    """``runs``, plus what the last report said of each benchmark not run now whose figures
    are still the ones it reported (its exit code and time, the load before that run)."""
    try:
        earlier = json.loads((base / "report.json").read_text())
        before = earlier["benchmarks"]
    except (OSError, ValueError, KeyError, TypeError):
        return runs
    kept = dict(runs)
    for name, document in documents.items():
        old = before.get(name) or {}
        if (
            name not in runs
            and document
            and "exit" in old
            and old.get("ran_at") == document.get("ran_at")
        ):
            kept[name] = {k: old[k] for k in ("exit", "seconds", "quick") if k in old}
    if not runs and kept:
        kept["_load_average"] = earlier.get("machine", {}).get("load_average")
    return kept


def build(base: Path, runs: dict[str, Any], console: Console) -> tuple[dict[str, Any], int]:
    """Read every benchmark's JSON and write the report; (report.json document, problems)."""
    info = machine() | {"written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    documents = {b.name: load(base, b) for b in BENCHES}
    runs = _with_earlier_runs(base, runs, documents)
    if "_load_average" in runs:  # the load before the benchmarks ran, not after
        info["load_average"] = runs["_load_average"]
    runs = {k: v for k, v in runs.items() if not k.startswith("_")}
    figs = [f for b in BENCHES for f in figures_of(b.name, documents[b.name])]
    drawn = plots(base, documents, figs)
    (base / "report.md").write_text(markdown(info, documents, runs, figs, drawn))
    report = {
        "machine": info,
        "benchmarks": {
            b.name: {
                "ran_at": (documents[b.name] or {}).get("ran_at"),
                **runs.get(b.name, {}),
            }
            for b in BENCHES
        },
        "plots": drawn,
        "figures": figs,
    }
    (base / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    problems = sum(1 for b in BENCHES if trouble(b.name, runs, documents))
    goals = [f for f in figs if f["goal"] is not None]
    table = Table("benchmark", "figures", "goals met", title="bench/report.md")
    for b in BENCHES:
        own = [f for f in figs if f["benchmark"] == b.name]
        with_goal = [f for f in own if f["goal"] is not None]
        why = trouble(b.name, runs, documents)
        status = f"[red]{why}" if why else str(len(own)) if documents[b.name] else "not run"
        table.add_row(
            b.name, status, f"{sum(1 for f in with_goal if f['met'])} of {len(with_goal)}"
        )
    console.print(table)
    console.print(
        f"{sum(1 for f in goals if f['met'])} of {len(goals)} goals met; report in "
        f"{base / 'report.md'}, {base / 'report.json'} and {base / 'plots'}/"
    )
    return report, problems


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: 1 only when a benchmark did not finish."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run every benchmark first")
    parser.add_argument("--quick", action="store_true", help="with --run: the smoke sizes")
    parser.add_argument(
        "--only", help="with --run: these benchmarks only, comma-separated (the rest as they are)"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=BENCH_DIR,
        help="reads DIR/out/*.json, writes DIR/report.md, DIR/report.json, DIR/plots/ "
        "(default: bench/)",
    )
    args = parser.parse_args(argv)
    console = Console()
    names = {b.name for b in BENCHES}
    chosen = list(BENCHES)
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        if unknown := wanted - names:
            parser.error(
                f"no benchmark {', '.join(sorted(unknown))}; choose from {', '.join(sorted(names))}"
            )
        chosen = [b for b in BENCHES if b.name in wanted]
    runs: dict[str, Any] = {}
    if args.run:
        runs["_load_average"] = [round(x, 2) for x in os.getloadavg()]
        runs |= run_benchmarks(args.dir, chosen, args.quick, console)
    _, problems = build(args.dir, runs, console)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
