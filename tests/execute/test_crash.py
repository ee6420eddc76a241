"""The tester is killed (SIGKILL) mid-programming; `ecuworks resume` finishes the job.

A real `ecuworks program` process programs the simulated f-series car (in this process)
and is killed at a random point of its session: after the k-th line of its progress log,
k drawn from a seeded generator, so a failure names its seed and point and replays. Then
`ecuworks resume` runs from the journal and must bring the car to the plan's target with
no ECU bricked, every time. CI runs 5 points; `make faults` runs 50
(``ECUWORKS_CRASH_POINTS=50``).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from pathlib import Path

from tests.conftest import StartSimulator
from tests.execute.test_program_e2e import FAST, control, svt_of, url_of
from tests.test_cli import run_cli

POINTS = int(os.environ.get("ECUWORKS_CRASH_POINTS", "5"))
SEED = int(os.environ.get("ECUWORKS_CRASH_SEED", "20261121"))
# An f-series session logs about 70 lines (each ECU starting and done, each step); the
# points spread over all of it, from the first step to the final check.
LINES = (1, 64)


async def program_until_killed(home: Path, url: str, after_lines: int) -> tuple[list[str], str]:
    """Start `program` and SIGKILL it once it has logged ``after_lines`` progress lines.

    Returns:
        The progress lines seen, and, if it ended before the point, its exit code and the
        rest of what it wrote (empty if it was killed).
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ecuworks",
        "--home",
        str(home),
        "program",
        "--vci",
        url,
        "--yes",
        *FAST,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert process.stderr is not None
    seen: list[str] = []
    other: list[str] = []
    try:
        async with asyncio.timeout(60):
            while len(seen) < after_lines:
                line = (await process.stderr.readline()).decode()
                if not line:
                    break  # it finished before the point: then resume has nothing to do
                (seen if line.startswith("[") else other).append(line.strip())
    finally:
        killed = process.returncode is None and len(seen) >= after_lines
        if process.returncode is None:
            process.kill()
        code = await process.wait()
    return seen, "" if killed else f"exit {code}: " + " | ".join(other[-5:])


async def test_resume_after_the_tester_is_killed_at_random_points(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    rng = random.Random(SEED)
    for point in range(POINTS):
        after = rng.randint(*LINES)
        sim = await start_simulator("f-series")
        url = url_of(sim, "f-series")
        await control(sim, "POST", "/battery", {"charger": True})
        code, out, err = await run_cli("--home", str(pdata_home), "plan", "--vci", url, "--json")
        assert code == 0, err
        plan = json.loads(out)

        seen, ended = await program_until_killed(pdata_home, url, after)
        where = f"seed {SEED}, point {point}, killed after line {after}: {seen[-1:]} {ended}"
        code, out, err = await run_cli(
            "--home", str(pdata_home), "resume", "--vci", url, "--yes", "--json", *FAST
        )
        finished_before_kill = len(seen) < after
        if finished_before_kill:
            assert ended.startswith("exit 0:"), where  # programming itself must have worked
            assert code == 3, f"{where}: {err}"  # nothing left to resume
        else:
            assert code == 0, f"{where}: {err}"
            assert json.loads(out)["outcome"] == "done", where

        state = await control(sim, "GET", "/state")
        assert [e["name"] for e in state["ecus"] if e["mode"] == "bricked"] == [], where
        target = {k: sorted(v) for k, v in plan["target_svt"].items()}
        actual = svt_of(state)
        assert {k: actual[k] for k in target} == target, where
        assert state["ilevel"]["current"] == plan["target_ilevel"], where
        assert [e["name"] for e in state["ecus"] if e["mode"] != "application"] == [], where
