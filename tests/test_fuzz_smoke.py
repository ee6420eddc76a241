"""``python -m bench.fuzz --quick`` works end to end: every target runs its inputs, no crash.

The million inputs are ``make fuzz``'s; this only shows that every target is wired up,
counts what it executed and that the report says so.
"""

from __future__ import annotations

from pathlib import Path

from bench.fuzz import plan, targets
from bench.fuzz_sim import Garage
from tests.test_bench_smoke import figures_of, run_quick


def test_quick_fuzz_runs_every_target_without_a_crash(tmp_path: Path) -> None:
    document = run_quick("bench.fuzz", tmp_path, timeout=120)

    everything = targets(Garage())  # not started: the garage starts its cars on first use
    quick = plan(everything, None)
    rows = {row["target"]: row for row in document["targets"]}
    assert set(rows) == set(quick)
    for name, row in rows.items():
        assert row["inputs"] >= quick[name], row
        assert row["failures"] == 0, row
    assert document["failures"] == []
    figures = figures_of(document)
    assert figures["fuzz crashes"]["value"] == 0
    assert figures["fuzz crashes"]["met"] is True
    assert figures["fuzz inputs"]["value"] == sum(row["inputs"] for row in rows.values())
