"""``make bench`` works end to end: every client downloads a small image completely, and
identify finds every ECU of the simulated vehicle.

Speed is never asserted here; the benchmark itself prints speed against the goals.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = {"raw", "doipclient", "ecuworks"}
GOALS = {
    "ecuworks/doipclient at 4 KiB",
    "ecuworks/raw at 4 KiB",
    "ecuworks MiB/s at 64 KiB",
    "peak RSS 2 MiB download",
}


def test_quick_bench_reports_every_client(tmp_path: Path) -> None:
    out = tmp_path / "transfer.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.transfer", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(out.read_text())

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

    figures = {f["name"]: f for f in document["figures"]}
    assert figures.keys() >= GOALS
    for name in GOALS:
        assert isinstance(figures[name]["met"], bool)
        assert figures[name]["value"] is not None
    for figure in figures.values():
        assert set(figure) == {"name", "value", "unit", "goal", "met"}


def test_quick_identify_bench_identifies_every_ecu(tmp_path: Path) -> None:
    out = tmp_path / "identify.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.identify", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(out.read_text())

    assert document["ecus"] >= 40
    for rows in document["scenarios"].values():
        assert rows
        for row in rows:
            # Each round was checked against the simulator's state (VIN, states, SVT).
            assert "error" not in row, row
            assert row["ecus"] == document["ecus"]
            assert row["identify_s"] > 0
    figures = {f["name"]: f for f in document["figures"]}
    goal = figures["identify 40 ECUs over DoIP at time scale 1"]
    assert (goal["goal"], goal["unit"], isinstance(goal["met"], bool)) == ("< 1", "s", True)
    assert goal["value"] is not None
    for figure in figures.values():
        assert set(figure) == {"name", "value", "unit", "goal", "met"}


def test_quick_program_bench_programs_the_whole_vehicle(tmp_path: Path) -> None:
    out = tmp_path / "program.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.program", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(out.read_text())

    runs = document["runs"]
    assert {r["kind"] for r in runs} == {"parallel", "serial"}
    for run in runs:
        # Every run ended "done" (final check passed) and the car reached the target.
        assert "error" not in run, run
        assert run["wall_s"] > 0
        assert run["lower_bound_s"] > 0
    figures = {f["name"]: f for f in document["figures"]}
    for name in ("whole vehicle / lower bound at scale 20", "serial / parallel at scale 20"):
        assert figures[name]["value"] is not None
        assert isinstance(figures[name]["met"], bool)
    for figure in figures.values():
        assert set(figure) == {"name", "value", "unit", "goal", "met"}
