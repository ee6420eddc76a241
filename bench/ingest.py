"""History ingest benchmark: 20 workstations send their history to the backend at once.

``python -m bench.ingest`` (part of ``make bench``) runs ``ecuworks backend`` in its
own process, over a throwaway PostgreSQL cluster (:mod:`tests.postgres`: Debian's binaries,
loopback, fsync off like the tests) and then over SQLite in a temporary directory. Before
the clock starts, the bench process makes the events: each of 20 workstations (a token
each) gets its own chains (10 VINs, hashed as the history hashes them, programming
reports of 8 ECUs as data, about 1.4 kB an event) and JSON-encodes them into batches of
100. Then 20 concurrent httpx clients, one per workstation, each send their batches one
after the other; the clock runs from the first request to the last answer. Every answer
must accept its whole batch, and afterwards the backend must hold exactly every event and
verify every chain (``GET /api/v1/chains/verify``), else the run fails (exit 1).

Figures: events/s (events over the wall time), p50 and p99 batch latency (request to
answer), the server process's CPU time. Goal: >= 2,000 events/s into PostgreSQL on
loopback; SQLite is printed for comparison. Figures go to the terminal and to
``bench/out/ingest.json``; speed never fails the run. ``--quick`` sends 2,000 events.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
from rich.console import Console
from rich.table import Table
from tests.postgres import postgres_cluster

from bench.common import figure, machine, peak_rss_mb, print_goals, process_peak_rss_mb
from ecuworks.backend.accounts import add_workshop, add_workstation
from ecuworks.backend.db import open_backend_database
from ecuworks.platform.history import GENESIS, event_hash

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "bench" / "out" / "ingest.json"
CLIENTS, VINS, BATCH = 20, 10, 100
GOAL_EVENTS_S = 2000.0
SERVER_START_TIMEOUT_S = 60.0
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def report_data(seq: int) -> dict[str, Any]:
    """A programming session's report (execute.report.Report.to_json) with 8 ECUs."""
    return {
        "schema": 1,
        "vin": "",
        "session": seq,
        "target_ilevel": "F030-24-07-550",
        "outcome": "done",
        "wall_s": 600.0 + seq % 97,
        "estimate_s": 640.0,
        "lower_bound_s": 410.0,
        "bytes_sent": 48_000_000,
        "final_check": True,
        "mismatches": [],
        "min_volts": 13.61,
        "pauses": 0,
        "ecus": [
            {
                "ecu": 0x12 + i,
                "name": f"ECU{i}",
                "status": "done",
                "seconds": 40.0 + i * 3.5,
                "actions": 3,
                "svk_matches": True,
                "dtcs": 0,
            }
            for i in range(8)
        ],
        "notes": [],
        "not_cleared": {},
    }


def workstation_events(name: str, count: int) -> list[dict[str, Any]]:
    """``count`` events of workstation ``name`` over its own VINs, round robin."""
    tails = {f"WBA{name[-3:]:0>3}BENCH{v:06d}"[:17]: (0, GENESIS) for v in range(VINS)}
    vins = list(tails)
    events = []
    for n in range(count):
        vin = vins[n % len(vins)]
        seq, prev = tails[vin]
        seq += 1
        event: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "vin": vin,
            "seq": seq,
            "kind": "program",
            "at": (T0 + timedelta(seconds=n)).isoformat(timespec="microseconds"),
            "user": "tech",
            "workstation": name,
            "journal_session": n + 1,
            "outcome": "done",
            "summary": f"program to F030-24-07-550 done in {10 + n % 7:.1f} min",
            "svt_before": {"18": ["SWFL-00001234-001.002.003", "CAFD-00000123-001.000.000"]},
            "svt_after": {"18": ["SWFL-00001234-001.002.004", "CAFD-00000123-001.000.001"]},
            "data": report_data(n),
            "prev_hash": prev,
        }
        event["hash"] = event_hash(prev, event)
        tails[vin] = (seq, event["hash"])
        events.append(event)
    return events


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (``/proc``); 0 where there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _lines(stream: IO[str], said: queue.Queue[str]) -> None:
    """Put each line of ``stream`` into ``said``, then "" at its end."""
    for line in stream:
        said.put(line)
    said.put("")


@contextlib.contextmanager
def serving(url: str, home: Path) -> Iterator[tuple[str, str, int]]:
    """``ecuworks backend --db URL --port 0`` in its own process: (base URL, admin token,
    pid)."""
    cmd = [sys.executable, "-m", "ecuworks", "--home", str(home), "backend", "--db", url]
    env = {**os.environ, "COLUMNS": "300"}
    proc = subprocess.Popen(
        [*cmd, "--port", "0"], cwd=ROOT, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stderr is not None
        said: queue.Queue[str] = queue.Queue()
        # A thread reads the lines: select() on a buffered text pipe misses lines that
        # one read brought in at once.
        threading.Thread(target=_lines, args=(proc.stderr, said), daemon=True).start()
        lines: list[str] = []
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not (lines and lines[-1].startswith("serving ")):
            try:
                line = said.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if not line:
                raise RuntimeError("`ecuworks backend` did not start: " + "".join(lines))
            lines.append(line)
        token = re.search(r"API token: (\S+)", "".join(lines))
        if token is None:
            raise RuntimeError("`ecuworks backend` printed no admin token: " + "".join(lines))
        yield lines[-1].split()[1].rstrip("/"), token[1], proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


async def send_all(
    url: str, tokens: dict[str, str], bodies: dict[str, list[bytes]]
) -> tuple[float, list[float], list[str]]:
    """Every workstation sends its batches at once: (wall s, batch latencies, errors)."""
    latencies: list[float] = []
    errors: list[str] = []

    async def workstation(name: str, client: httpx.AsyncClient) -> None:
        for body in bodies[name]:
            start = time.perf_counter()
            answer = await client.post("/api/v1/events", content=body)
            latencies.append(time.perf_counter() - start)
            result = answer.json() if answer.status_code == 200 else {}
            if answer.status_code != 200 or result["rejected"] or result["duplicates"]:
                errors.append(f"{name}: {answer.status_code} {answer.text[:300]}")

    clients = {
        name: httpx.AsyncClient(
            base_url=url,
            timeout=120,
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )
        for name, token in tokens.items()
    }
    try:
        for client in clients.values():  # connect and warm up before the clock starts
            await client.get("/api/v1/me")
        start = time.perf_counter()
        await asyncio.gather(*(workstation(n, c) for n, c in clients.items()))
        wall = time.perf_counter() - start
    finally:
        for client in clients.values():
            await client.aclose()
    return wall, latencies, errors


async def check_stored(url: str, admin: str, expected: int) -> str | None:
    """None when the backend holds exactly ``expected`` events in verified chains."""
    headers = {"authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(base_url=url, timeout=300, headers=headers) as client:
        verified = (await client.get("/api/v1/chains/verify")).json()
    if verified["events"] != expected or not verified["ok"]:
        return f"the backend holds {verified['events']} of {expected} events: {verified}"
    return None


def run_one(dialect: str, url: str, events: int, work: Path) -> dict[str, Any]:
    """Set up the workshop and tokens, serve, send, check: one row of figures."""
    database = open_backend_database(url)
    add_workshop(database, "Bench")
    tokens = {
        f"ws-{i:03d}": add_workstation(database, "Bench", f"ws-{i:03d}") for i in range(CLIENTS)
    }
    database.close()
    per_client = events // CLIENTS
    bodies = {}
    for name in tokens:
        made = workstation_events(name, per_client)
        bodies[name] = [
            json.dumps({"events": made[i : i + BATCH]}).encode()
            for i in range(0, per_client, BATCH)
        ]
    row: dict[str, Any] = {
        "database": dialect,
        "clients": CLIENTS,
        "events": per_client * CLIENTS,
        "batch": BATCH,
        "body_bytes": sum(len(b) for bs in bodies.values() for b in bs),
    }
    with serving(url, work / dialect) as (base, admin, pid):
        cpu = _cpu_s(pid)
        wall, latencies, errors = asyncio.run(send_all(base, tokens, bodies))
        row["server_cpu_s"] = _cpu_s(pid) - cpu
        row["server_rss_mb"] = process_peak_rss_mb(pid)
        problem = errors[0] if errors else asyncio.run(check_stored(base, admin, row["events"]))
    quantiles = statistics.quantiles(latencies, n=100)
    row |= {
        "wall_s": wall,
        "events_s": row["events"] / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": quantiles[98] * 1000,
    }
    if problem:
        row["error"] = problem
    return row


def figures(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The figures of every run; the PostgreSQL rate is the goal."""
    figs = []
    for row in rows:
        name = "PostgreSQL" if row["database"] == "postgresql" else "SQLite"
        goal = f">= {GOAL_EVENTS_S:g}" if row["database"] == "postgresql" else None
        figs += [
            figure(f"ingest {name} {row['clients']} clients", row["events_s"], "events/s", goal),
            figure(f"ingest {name} p50 batch latency", row["p50_ms"], "ms"),
            figure(f"ingest {name} p99 batch latency", row["p99_ms"], "ms"),
            figure(f"ingest {name} server CPU", row["server_cpu_s"], "s"),
            figure(f"peak RSS backend server ({name})", row.get("server_rss_mb"), "MB"),
        ]
    return figs


def report(rows: list[dict[str, Any]], figs: list[dict[str, Any]], info: dict[str, Any]) -> None:
    """The run table, then the goals."""
    console = Console()
    console.print(
        f"history ingest benchmark - {info['cpu']}, {info['cores']} cores, Python "
        f"{info['python']}: {CLIENTS} workstations, batches of {BATCH}"
    )
    table = Table(
        "database",
        "events",
        "MB sent",
        "wall s",
        "events/s",
        "p50 ms",
        "p99 ms",
        "server CPU s",
        "check",
    )
    for r in rows:
        table.add_row(
            r["database"],
            f"{r['events']:,}",
            f"{r['body_bytes'] / 1e6:.1f}",
            f"{r['wall_s']:.2f}",
            f"{r['events_s']:,.0f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{r['server_cpu_s']:.2f}",
            "[red]" + r["error"] if "error" in r else "ok",
        )
    console.print(table)
    print_goals(console, info, figs, also=("ingest",))


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; 0 unless an event was refused, lost or stored twice."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in all")
    parser.add_argument("--quick", action="store_true", help="2,000 events")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write figures")
    args = parser.parse_args(argv)
    events = 2_000 if args.quick else args.events
    info = machine()  # before the run, so that the load average is other processes' load
    with tempfile.TemporaryDirectory(prefix="ecuworks-bench-ingest-") as tmp:
        work = Path(tmp)
        with postgres_cluster() as cluster:
            rows = [run_one("postgresql", cluster.database(), events, work)]
        rows.append(run_one("sqlite", f"sqlite:///{work / 'backend.sqlite3'}", events, work))
    figs = [
        *figures(rows),
        figure(
            f"peak RSS ingest clients ({CLIENTS} workstations, one process)", peak_rss_mb(), "MB"
        ),
    ]
    report(rows, figs, info)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": "ingest", "machine": info, "runs": rows, "figures": figs}
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"figures written to {args.json}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
