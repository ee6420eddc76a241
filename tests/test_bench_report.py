"""``make bench``'s report: every figure of the benchmarks that ran, beside its goal, with
plots, and a clear word when a benchmark did not finish.

The plan benchmark is the one run here (a few seconds at ``--quick``); speed is never
asserted, only that the report holds what the benchmark measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.report import BENCHES

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def report(*args: str, base: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.report", "--dir", str(base), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_report_holds_every_figure_the_benchmark_measured(tmp_path: Path) -> None:
    done = report("--run", "--quick", "--only", "plan", base=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr

    measured = json.loads((tmp_path / "out" / "plan.json").read_text())["figures"]
    document = json.loads((tmp_path / "report.json").read_text())
    figures = document["figures"]
    assert len(figures) == len(measured) > 0
    for figure, own in zip(figures, measured, strict=True):
        assert set(figure) == {"benchmark", "name", "value", "unit", "goal", "met"}
        assert figure == {"benchmark": "plan", **own}
    goal = next(f for f in figures if f["goal"] is not None)
    assert goal["name"] == "plan 80 ECUs / 5000 variants"
    assert isinstance(goal["met"], bool)
    assert document["benchmarks"]["plan"]["exit"] == 0
    assert {f["name"] for f in figures} >= {
        f"plan {n} ECUs / {n * 125 // 2} variants" for n in (10, 20, 40, 160)
    }

    markdown = (tmp_path / "report.md").read_text()
    assert "## Goals" in markdown
    assert "## The measures plan at scale" in markdown
    assert f"| plan | {goal['name']} |" in markdown  # the goal table names it, with its goal
    assert "![The measures plan at scale](plots/plan.png)" in markdown
    for name in ("plan", "rss"):
        assert (tmp_path / "plots" / f"{name}.png").read_bytes().startswith(PNG)
    others = [b for b in BENCHES if b.name != "plan"]
    assert markdown.count("Not run: no `out/") == len(others)
    assert "Did not finish" not in markdown


def test_a_benchmark_that_left_garbage_fails_the_report_and_is_named(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "program.json").write_text('{"figures": [')  # cut off mid-write

    done = report(base=tmp_path)

    assert done.returncode == 1
    markdown = (tmp_path / "report.md").read_text()
    assert "**Did not finish:** `bench.program` (unreadable:" in markdown
    assert json.loads((tmp_path / "report.json").read_text())["figures"] == []
