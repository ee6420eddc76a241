"""The tester is killed (SIGKILL) mid-programming; `ecuworks resume` finishes the job.

A real `ecuworks program` process programs the simulated f-series car (in this process)
and is killed at a random point of its session: after the k-th line of its progress log,
k drawn from a seeded generator, so a failure names its seed and point and replays. Then
`ecuworks resume` runs from the journal and must bring the car to the plan's target with
no ECU bricked and no record lost, every time. CI runs 5 points; `make faults`
(``bench/faults.py``) runs 50 with the same functions (``tests/execute/crashing.py``).
"""

from __future__ import annotations

import json
import os
import random
import signal
from pathlib import Path

from tests.conftest import StartSimulator
from tests.execute.crashing import (
    EXIT_DONE,
    EXIT_FAILED,
    EXIT_REFUSED,
    car_problems,
    cut_at_first_bootloader_flash,
    fresh_home,
    plan_vehicle,
    program_until_killed,
    record_problems,
    resume,
    watch_session,
)
from tests.execute.test_program_e2e import control, url_of

from ecuworks.execute.journal import Journal
from ecuworks.execute.runner import RunOptions
from ecuworks.execute.session import JOURNAL_FILE, resume_session
from ecuworks.pdata.source import open_pdata
from ecuworks.platform.db import default_url, open_database
from ecuworks.platform.history import vehicle_records

POINTS = int(os.environ.get("ECUWORKS_CRASH_POINTS", "5"))
SEED = int(os.environ.get("ECUWORKS_CRASH_SEED", "20261121"))
# An f-series session logs about 70 lines (each ECU starting and done, each step); the
# points spread over all of it, from the first step to the final check.
LINES = (1, 64)
# Ctrl-C once this many progress lines are out: the gateway done, the lanes running.
CTRL_C_AFTER = 12


async def test_resume_after_the_tester_is_killed_at_random_points(
    start_simulator: StartSimulator, demo_pdata_dir: Path, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    for point in range(POINTS):
        after = rng.randint(*LINES)
        # One workstation per point, so that its records are this point's alone.
        home = fresh_home(tmp_path / f"point-{point}", demo_pdata_dir)
        sim = await start_simulator("f-series")
        url = url_of(sim, "f-series")
        await control(sim, "POST", "/battery", {"charger": True})
        plan = await plan_vehicle(home, url)

        seen, ended = await program_until_killed(home, url, after)
        where = f"seed {SEED}, point {point}, killed after line {after}: {seen[-1:]} {ended}"
        code, out, err = await resume(home, url)
        finished_before_kill = len(seen) < after
        if finished_before_kill:
            assert ended.startswith("exit 0:"), where  # programming itself must have worked
            assert code == EXIT_REFUSED, f"{where}: {err}"  # nothing left to resume
        else:
            assert code == EXIT_DONE, f"{where}: {err}"
            assert json.loads(out)["outcome"] == "done", where

        assert car_problems(await control(sim, "GET", "/state"), plan) == {}, where
        assert record_problems(home, plan["vin"], sessions_ended=1) == [], where


async def test_a_dropped_connection_leaves_a_bootloader_flash_for_resume(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series")
    url = url_of(sim, "f-series")
    pdata = open_pdata(pdata_home)
    planned, cut = await cut_at_first_bootloader_flash(sim, pdata, pdata_home)
    with Journal.open(pdata_home / JOURNAL_FILE) as journal:
        session = journal.unfinished()
        assert session is not None
        # One attempt met the dropped link; the others are left for the resume.
        assert journal.attempts(session.id, cut) == 1

    options = RunOptions(tester_present_s=0.01, max_parallel=1)
    report = await resume_session(url, pdata, pdata_home, options=options)

    assert report.outcome == "done"
    plan = json.loads(planned.to_bytes())
    assert car_problems(await control(sim, "GET", "/state"), plan) == {}


async def test_ctrl_c_stops_the_session_in_the_history_and_resume_finishes_it(
    start_simulator: StartSimulator, demo_pdata_dir: Path, tmp_path: Path
) -> None:
    home = fresh_home(tmp_path / "workstation", demo_pdata_dir)
    sim = await start_simulator("f-series")
    url = url_of(sim, "f-series")
    await control(sim, "POST", "/battery", {"charger": True})
    plan = await plan_vehicle(home, url)

    async def ctrl_c(seen: list[str]) -> bool:
        return len(seen) >= CTRL_C_AFTER

    seen, ended = await watch_session(home, url, ctrl_c, stop=signal.SIGINT)

    assert len(seen) == CTRL_C_AFTER, f"the session ended before Ctrl-C: {ended}"
    assert ended.startswith(f"exit {EXIT_FAILED}:"), ended
    assert "interrupted; the journal keeps where it stopped: run 'ecuworks resume'" in ended
    database = open_database(default_url(home))
    last = vehicle_records(database, plan["vin"])[-1]
    database.close()
    assert (last.kind, last.outcome) == ("program", "failed")
    assert "interrupted by the technician (Ctrl-C)" in last.summary
    assert last.journal_session is not None

    code, out, err = await resume(home, url)
    assert code == EXIT_DONE, err
    assert json.loads(out)["session"] == last.journal_session
    assert car_problems(await control(sim, "GET", "/state"), plan) == {}
