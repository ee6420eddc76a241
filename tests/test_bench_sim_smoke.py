"""``python -m bench.sim --quick`` works end to end: both figures come out with a verdict.

Speed is never asserted here; the benchmark itself prints its figures against the goals.
"""

from __future__ import annotations

from pathlib import Path

from tests.test_bench_smoke import figures_of, run_quick


def test_quick_sim_bench_reports_both_figures(tmp_path: Path) -> None:
    document = run_quick("bench.sim", tmp_path, timeout=180)

    # Every download arrived whole (routine 0202 confirmed the CRC-32) in the granted blocks.
    rows = [*document["can"], document["ethernet"]]
    assert len(document["can"]) >= 1
    for row in rows:
        assert "error" not in row, row
        assert row["crc_ok"]
        assert row["bytes"] == row["size"] > 0
        assert row["blocks"] == row["expected_blocks"]
        assert row["measured_s"] > 0
        assert row["expected_s"] > 0
    assert {r["bus_kind"] for r in document["can"]} == {"can"}
    assert document["ethernet"]["bus_kind"] == "ethernet"

    figures = list(figures_of(document).values())
    goals = [f for f in figures if f["goal"] is not None]
    can = [f for f in goals if f["name"].endswith("measured / ISO-TP arithmetic")]
    eth = [f for f in goals if f["name"].endswith("simulator serves")]
    assert len(can) == len(document["can"])
    assert len(eth) == 1
    for figure in [*can, *eth]:
        assert isinstance(figure["met"], bool)
        assert figure["value"] is not None
    rss = {f["name"]: f for f in figures if f["name"].startswith("peak RSS")}
    assert set(rss) == {"peak RSS bench process (client)", "peak RSS simulator process"}
    assert all(0 < f["value"] < 10_000 for f in rss.values())
