"""``python -m bench.faults --quick``: every fault scenario once, nothing bricked or lost.

The long suite (``make faults``) runs the same code with its full counts; this smoke test
keeps it working. It runs the harness as a user does, in a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from bench.faults import DEFAULT_COUNTS

ROOT = Path(__file__).resolve().parent.parent


async def test_the_quick_fault_suite_recovers_every_scenario(tmp_path: Path) -> None:
    scenarios = list(DEFAULT_COUNTS)
    out = tmp_path / "faults.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.faults",
        "--quick",
        *(f"--only={name}" for name in scenarios),
        "--json",
        str(out),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    try:
        printed, _ = await asyncio.wait_for(process.communicate(), 600)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = printed.decode()

    assert process.returncode == 0, text
    table = text[text.index("scenario") :]
    for name in scenarios:
        assert name in table, f"the table has no row for {name}"
    result = json.loads(out.read_text())
    ran = {s["name"]: s for s in result["scenarios"]}
    assert set(ran) == set(scenarios)
    for name, scenario in ran.items():
        assert scenario["runs"] >= 1, name
        assert scenario["recovered"] == scenario["runs"], scenario["failures"]
        assert (scenario["bricked"], scenario["lost"]) == (0, 0), scenario["failures"]
    figures = {f["name"]: f for f in result["figures"]}
    assert figures["faults bricked ECUs"]["value"] == 0
    assert figures["faults lost records"]["value"] == 0
