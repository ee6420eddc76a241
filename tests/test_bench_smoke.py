"""``make bench`` works end to end: every client downloads a small image completely, and
identify finds every ECU of the simulated vehicle.

Speed is never asserted here; the benchmark itself prints speed against the goals.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = {"raw", "doipclient", "ecuworks"}
GOALS = {
    "ecuworks/doipclient at 4 KiB",
    "ecuworks/raw at 4 KiB",
    "ecuworks MiB/s at 64 KiB",
    "peak RSS 2 MiB download",
}


def run_quick(module: str, tmp_path: Path, timeout: float = 120) -> dict[str, Any]:
    """Run ``python -m <module> --quick --json FILE``; it must exit 0. Its JSON document."""
    out = tmp_path / f"{module}.json"
    done = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document: dict[str, Any] = json.loads(out.read_text())
    return document


def figures_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The document's figures by name, each of the shape every bench prints."""
    figures = {f["name"]: f for f in document["figures"]}
    for figure in figures.values():
        assert set(figure) == {"name", "value", "unit", "goal", "met"}
    return figures


def test_quick_bench_reports_every_client(tmp_path: Path) -> None:
    document = run_quick("bench.transfer", tmp_path)

    runs = document["runs"]
    assert {(r["client"], r["block_size"]) for r in runs} >= {
        (client, block) for client in CLIENTS for block in (4096, 65536)
    }
    for run in runs:
        assert "error" not in run, run
        # The server refuses 37 unless every announced byte arrived; the CRC checks content.
        assert run["bytes"] == run["size"] > 0
        assert run["crc_ok"]
        assert run["blocks"] == -(-run["size"] // run["block_size"])
        assert run["mib_s"] > 0
        assert 0 < run["rss_mb"] < 10_000

    figures = figures_of(document)
    assert figures.keys() >= GOALS
    for name in GOALS:
        assert isinstance(figures[name]["met"], bool)
        assert figures[name]["value"] is not None


def test_quick_identify_bench_identifies_every_ecu(tmp_path: Path) -> None:
    document = run_quick("bench.identify", tmp_path)

    assert document["ecus"] >= 40
    for rows in document["scenarios"].values():
        assert rows
        for row in rows:
            # Each round was checked against the simulator's state (VIN, states, SVT).
            assert "error" not in row, row
            assert row["ecus"] == document["ecus"]
            assert row["identify_s"] > 0
    figures = figures_of(document)
    goal = figures["identify 40 ECUs over DoIP at time scale 1"]
    assert (goal["goal"], goal["unit"], isinstance(goal["met"], bool)) == ("< 1", "s", True)
    assert goal["value"] is not None


def test_quick_program_bench_programs_the_whole_vehicle(tmp_path: Path) -> None:
    document = run_quick("bench.program", tmp_path)

    runs = document["runs"]
    assert {r["kind"] for r in runs} == {"parallel", "serial"}
    for run in runs:
        # Every run ended "done" (final check passed) and the car reached the target.
        assert "error" not in run, run
        assert run["wall_s"] > 0
        assert run["lower_bound_s"] > 0
    figures = figures_of(document)
    for name in ("whole vehicle / lower bound at scale 20", "serial / parallel at scale 20"):
        assert figures[name]["value"] is not None
        assert isinstance(figures[name]["met"], bool)
