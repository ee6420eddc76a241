"""P-Data benchmark: build and verify the demo data, ``pdata sync`` over loopback, peak RSS.

``python -m bench.pdata`` (part of ``make bench``) measures three things:

1. **Demo build**: the time to generate the demo P-Data (:func:`generate_demo`) and to
   verify it again from its trusted root (:func:`verify_directory`). These only inform.
2. **Sync**: ``ecuworks pdata serve`` serves a repository in its own process; a fresh client
   process configures a local store and runs :meth:`LocalStore.sync` (metadata, every image
   downloaded and verified before it enters the cache). Throughput is image bytes over the
   wall time of the whole sync, for the demo repository and for one 512 MiB unit. Goal:
   >= 150 MB/s (MB = 10^6 bytes).
3. **Peak RSS**: the client process that synced the 512 MiB unit then streams it through
   :meth:`LocalStore.open_unit` (verified read) to the end; goal: its peak RSS < 150 MB.

Figures go to the terminal and to ``bench/out/pdata.json``. Speed never fails the run; exit
1 means a sync or a stream failed or delivered the wrong bytes. bench/README.md says how to
read them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import resource
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import figure, machine, print_goals, profile_rows

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "bench" / "out" / "pdata.json"

KIB, MIB = 1024, 1024 * 1024
MB = 1_000_000
SYNC_GOAL_MB_S = 150.0
RSS_GOAL_MB = 150.0
DEMO_ROUNDS = 3  # demo syncs, each in a fresh process with an empty store; fastest counts
BIG_UNIT, QUICK_BIG_UNIT = 512 * MIB, 8 * MIB
BIG_SERIES, BIG_PATH = "BENCH", "units/big.bin"
SERVER_START_TIMEOUT_S = 30.0
CHILD_TIMEOUT_S = 300.0
PROFILE_TOP = 20  # functions shown with --profile

# The big unit is a fixed pseudo-random 1 MiB pattern repeated, made as it is read.
PATTERN = random.Random(0x5EED).randbytes(MIB)


# -- the 512 MiB repository -----------------------------------------------------------------


class _PatternReader(io.RawIOBase):
    """``size`` bytes of the repeated pattern as a file, never whole in memory."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._left, MIB - self._offset)
        buffer[:n] = PATTERN[self._offset : self._offset + n]
        self._offset = (self._offset + n) % MIB
        self._left -= n
        return n


def build_big(out_dir: Path, size: int) -> tuple[Path, Path]:
    """A repository with one unit of ``size`` bytes; (repository dir, trusted root)."""
    from ecuworks.pdata.keys import TOP_LEVEL_ROLES, KeyRing
    from ecuworks.pdata.repository import RepositoryBuilder

    repo_dir = out_dir / "repository"
    builder = RepositoryBuilder(repo_dir, KeyRing.generate([*TOP_LEVEL_ROLES, BIG_SERIES]))
    with io.BufferedReader(_PatternReader(size), buffer_size=MIB) as reader:
        builder.add_target(
            BIG_SERIES,
            BIG_PATH,
            reader,
            custom={"sgbm": "SWFL-0000BE4C-001.000.000", "process_class": "SWFL", "release": 1},
        )
    builder.publish()
    return repo_dir, repo_dir / "1.root.json"


# -- the client process ------------------------------------------------------------------------


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Body of one client process: configure, sync, and stream a unit if asked."""
    import httpx

    from ecuworks.pdata.store import LocalStore

    url, home = spec["url"], Path(spec["home"])

    async def warm_up() -> None:  # imports httpx's async backend before the clock starts
        async with httpx.AsyncClient() as warm:
            (await warm.get(url + "1.root.json")).raise_for_status()

    asyncio.run(warm_up())
    store = LocalStore(home)
    store.configure(url, Path(spec["root"]).read_bytes())
    profiler = None
    if spec.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    start, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    report = asyncio.run(store.sync())
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(spec["profile"])
    out: dict[str, Any] = {
        "sync_s": time.perf_counter() - start,
        "sync_cpu_s": time.process_time() - cpu,
        "targets": len(report.targets),
        "downloaded": len(report.downloaded),
        "bytes": report.bytes_downloaded,
        "image_bytes": sum({i.sha256: i.length for i in report.targets}.values()),
        "sync_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    if spec.get("stream"):
        series, path = spec["stream"]
        length = store.target_info(series, path).length
        start, cpu = time.perf_counter(), time.process_time()
        streamed = sum(len(chunk) for chunk in store.open_unit(series, path))
        out |= {
            "stream_s": time.perf_counter() - start,
            "stream_cpu_s": time.process_time() - cpu,
            "stream_bytes": streamed,
            "unit_length": length,
        }
    return out | {"rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


# -- orchestration -------------------------------------------------------------------------


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (``/proc``); 0 where there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def serving(repo_dir: Path) -> Iterator[tuple[str, int]]:
    """``ecuworks pdata serve DIR --port 0`` in its own process; yield (URL, pid)."""
    cmd = [sys.executable, "-m", "ecuworks", "pdata", "serve", str(repo_dir), "--port", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], SERVER_START_TIMEOUT_S)
        words = proc.stdout.readline().split() if ready else []
        if len(words) != 2 or words[0] != "serving":
            raise RuntimeError(f"`ecuworks pdata serve` did not start: {' '.join(words)!r}")
        yield words[1], proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def measure(name: str, spec: dict[str, Any], server_pid: int) -> dict[str, Any]:
    """Run one client process; its report, or with ``error``."""
    cmd = [sys.executable, "-m", "bench.pdata", "--child", json.dumps(spec)]
    row: dict[str, Any] = {"repository": name}
    before = _cpu_s(server_pid)
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return row | {"error": f"no result within {CHILD_TIMEOUT_S:g} s"}
    row["server_cpu_s"] = _cpu_s(server_pid) - before
    if done.returncode != 0:
        return row | {"error": (done.stderr.strip().splitlines() or ["crashed"])[-1]}
    row |= json.loads(done.stdout.strip().splitlines()[-1])
    row["sync_mb_s"] = row["image_bytes"] / row["sync_s"] / MB
    if row["bytes"] != row["image_bytes"]:
        row["error"] = f"{row['bytes']} bytes downloaded, the images hold {row['image_bytes']}"
    if "stream_s" in row:
        row["stream_mb_s"] = row["stream_bytes"] / row["stream_s"] / MB
        if row["stream_bytes"] != row["unit_length"]:
            row["error"] = f"streamed {row['stream_bytes']} of {row['unit_length']} bytes"
    return row


def best_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One repository's rounds as one run: the fastest, with the largest peak RSS."""
    failed = [r for r in rows if "error" in r]
    if failed:
        return failed[0]
    best = dict(min(rows, key=lambda r: r["sync_s"]))
    best["rounds_s"] = [round(r["sync_s"], 4) for r in rows]
    best["rss_kib"] = max(r["rss_kib"] for r in rows)
    return best


def run_all(quick: bool, profile: Path | None, work: Path) -> dict[str, Any]:
    """Build and verify the demo, sync it, then build, sync and stream the big unit."""
    from ecuworks.pdata.demo import generate_demo
    from ecuworks.pdata.verify import verify_directory

    print("demo P-Data: generate and verify ...", flush=True)
    start = time.perf_counter()
    demo = generate_demo(work / "demo")
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    verified = verify_directory(demo.repo_dir, demo.root_path)
    verify_s = time.perf_counter() - start
    image_bytes = sum(i.length for i in verified.verified)
    build: dict[str, Any] = {
        "files": demo.files,
        "total_bytes": demo.total_bytes,
        "images": len(verified.verified),
        "image_bytes": image_bytes,
        "generate_s": build_s,
        "generate_mb_s": demo.total_bytes / build_s / MB,
        "verify_s": verify_s,
        "verify_mb_s": image_bytes / verify_s / MB,
    }
    if not verified.ok:
        build["error"] = f"{len(verified.failures)} demo images failed verification"

    syncs = []
    with serving(demo.repo_dir) as (url, pid):
        rows = []
        for round_ in range(1 if quick else DEMO_ROUNDS):
            print(f"sync demo P-Data, round {round_ + 1} ...", flush=True)
            home = work / f"home-demo-{round_}"
            spec = {"url": url, "root": str(demo.root_path), "home": str(home)}
            rows.append(measure("demo", spec, pid))
            shutil.rmtree(home, ignore_errors=True)
        syncs.append(best_of(rows))
        if profile is not None:
            print("sync demo P-Data under cProfile ...", flush=True)
            home = work / "home-profile"
            spec = {"url": url, "root": str(demo.root_path), "home": str(home)}
            measure("demo (profiled)", spec | {"profile": str(profile)}, pid)
            shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(work / "demo", ignore_errors=True)

    size = QUICK_BIG_UNIT if quick else BIG_UNIT
    print(f"one {size // MIB} MiB unit: build, sync and stream ...", flush=True)
    start = time.perf_counter()
    repo_dir, root = build_big(work / "big", size)
    build["big_build_s"] = time.perf_counter() - start
    build["big_bytes"] = size
    with serving(repo_dir) as (url, pid):
        big_spec: dict[str, Any] = {
            "url": url,
            "root": str(root),
            "home": str(work / "home-big"),
            "stream": [BIG_SERIES, BIG_PATH],
        }
        big = measure(f"one {size // MIB} MiB unit", big_spec, pid)
    big["size"] = size
    syncs.append(big)
    return {"build": build, "syncs": syncs}


# -- figures and report ----------------------------------------------------------------------


def figures(build: dict[str, Any], syncs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The demo build figures (informational), then sync, stream and RSS with their goals."""
    out = [
        figure("demo generate time", build["generate_s"], "s"),
        figure("demo generate", build["generate_mb_s"], "MB/s"),
        figure("demo verify time", build["verify_s"], "s"),
        figure("demo verify", build["verify_mb_s"], "MB/s"),
        figure("big unit build (RepositoryBuilder)", build["big_build_s"], "s"),
    ]
    demo, big = syncs
    label = big["repository"]
    out += [
        figure("pdata sync demo time", demo.get("sync_s"), "s"),
        figure("pdata sync demo", demo.get("sync_mb_s"), "MB/s", f">= {SYNC_GOAL_MB_S:g}"),
        figure(f"pdata sync {label} time", big.get("sync_s"), "s"),
        figure(f"pdata sync {label}", big.get("sync_mb_s"), "MB/s", f">= {SYNC_GOAL_MB_S:g}"),
        figure(f"open_unit stream {label}", big.get("stream_mb_s"), "MB/s"),
        figure(
            f"peak RSS sync + stream {label}",
            big["rss_kib"] * KIB / MB if "rss_kib" in big else None,
            "MB",
            f"< {RSS_GOAL_MB:g}",
        ),
    ]
    return out


def profile_top(path: Path, count: int) -> list[dict[str, Any]]:
    """The client's functions by own time during a profiled demo sync."""
    _, rows = profile_rows(path)
    return sorted(rows, key=lambda r: -r["own_s"])[:count]


def report(
    runs: dict[str, Any],
    figs: list[dict[str, Any]],
    info: dict[str, Any],
    top: list[dict[str, Any]],
) -> None:
    """Print the build, one row per sync, the goals, and the profile when there is one."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = 150  # keep the tables whole in logs and pipes
    console.print(
        f"P-Data benchmark - {info['cpu']}, {info['cores']} cores, Python {info['python']}"
    )
    b = runs["build"]
    build = Table("step", "bytes", "files", "s", "MB/s", "MiB/s", title="building P-Data (informs)")
    build.add_row(
        "generate_demo",
        f"{b['total_bytes']:,}",
        str(b["files"]),
        f"{b['generate_s']:.2f}",
        f"{b['generate_mb_s']:,.1f}",
        f"{b['generate_mb_s'] * MB / MIB:,.1f}",
    )
    build.add_row(
        "verify_directory",
        f"{b['image_bytes']:,}",
        f"{b['images']} images",
        f"{b['verify_s']:.2f}",
        f"{b['verify_mb_s']:,.1f}",
        f"{b['verify_mb_s'] * MB / MIB:,.1f}",
    )
    big_mb_s = b["big_bytes"] / b["big_build_s"] / MB
    build.add_row(
        "RepositoryBuilder, one unit",
        f"{b['big_bytes']:,}",
        "1 image",
        f"{b['big_build_s']:.2f}",
        f"{big_mb_s:,.1f}",
        f"{big_mb_s * MB / MIB:,.1f}",
    )
    console.print(build)
    syncs = Table(
        "repository",
        "images",
        "image bytes",
        "sync s",
        "sync MB/s",
        "sync MiB/s",
        "client CPU s",
        "server CPU s",
        "stream MB/s",
        "peak RSS MB",
        "check",
        title="pdata sync over loopback (serve in its own process, client in a fresh one)",
    )
    for r in runs["syncs"]:
        if "error" in r and "sync_s" not in r:
            syncs.add_row(r["repository"], *[""] * 9, f"[red]{r['error']}")
            continue
        syncs.add_row(
            r["repository"],
            str(r["targets"]),
            f"{r['image_bytes']:,}",
            f"{r['sync_s']:.2f}",
            f"{r['sync_mb_s']:,.1f}",
            f"{r['sync_mb_s'] * MB / MIB:,.1f}",
            f"{r['sync_cpu_s']:.2f}",
            f"{r['server_cpu_s']:.2f}",
            f"{r['stream_mb_s']:,.1f}" if "stream_mb_s" in r else "-",
            f"{r['rss_kib'] * KIB / MB:,.1f}",
            f"[red]{r['error']}" if "error" in r else "ok",
        )
    console.print(syncs)
    print_goals(console, info, figs)
    if top:
        prof = Table("function", "calls", "own s", "cum s", title="client, profiled demo sync")
        for t in top:
            prof.add_row(t["function"], str(t["calls"]), f"{t['own_s']:.3f}", f"{t['cum_s']:.3f}")
        console.print(prof)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; 0 unless a sync or stream failed or delivered wrong data."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, an 8 MiB unit")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write figures")
    parser.add_argument("--profile", action="store_true", help="profile one demo sync (client)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one client process
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0

    info = machine()  # before the run, so that the load average is other processes' load
    with tempfile.TemporaryDirectory(prefix="ecuworks-bench-pdata-") as tmp:
        work = Path(tmp)
        dump = work / "sync.prof" if args.profile else None
        runs = run_all(args.quick, dump, work)
        top = profile_top(dump, PROFILE_TOP) if dump is not None and dump.exists() else []
    figs = figures(runs["build"], runs["syncs"])
    report(runs, figs, info, top)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": "pdata", "machine": info, **runs, "profile": top, "figures": figs}
    args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(f"figures written to {args.json}")
    return 1 if any("error" in r for r in [runs["build"], *runs["syncs"]]) else 0


if __name__ == "__main__":
    sys.exit(main())
