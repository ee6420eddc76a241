"""What the fault suites share: a tester killed mid-programming, ``resume``, and the verdict.

``tests/execute/test_crash.py`` (5 kill points in CI) and ``bench/faults.py`` (``make
faults``: kills, connection drops, voltage sags, NRC storms, simulator restarts) break a
programming session in different ways and then judge the same things:

- **the car**, from the simulator's own ``/state``: every ECU of the plan answers in its
  application, its SVK is the plan's target, the I-level moved on;
- **the tester's view**: identification over the same VCI reads the target SVT;
- **the records**: the journal's session finished with every action of its plan a
  Success, and the vehicle history holds exactly one record per session run that ended
  (a killed process cannot write one; a refusal writes none), in a chain that verifies.

Each check returns what is wrong, as text for a failure message; empty means right.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import pytest
from tests.execute.test_program_e2e import FAST, svt_of, url_of
from tests.test_cli import run_cli

from ecuworks.errors import ProgrammingFailed
from ecuworks.execute.journal import Journal, Status
from ecuworks.execute.progress import Kind, Progress
from ecuworks.execute.runner import RunOptions
from ecuworks.execute.session import JOURNAL_FILE, apply_plan, identify_vehicle, make_plan
from ecuworks.pdata.source import DEMO_DIR, PData
from ecuworks.plan.model import Plan
from ecuworks.platform.db import default_url, open_database
from ecuworks.platform.history import vehicle_records, verify_chain
from ecuworks.sim.faults import DropFault
from ecuworks.sim.simulator import Simulator
from ecuworks.transport.url import open_link
from ecuworks.vehicle.identify import EcuMode

__all__ = [
    "EXIT_DONE",
    "EXIT_FAILED",
    "EXIT_REFUSED",
    "car_problems",
    "cut_at_first_bootloader_flash",
    "fresh_home",
    "plan_vehicle",
    "program_until_killed",
    "record_problems",
    "resume",
    "tester_problems",
    "watch_session",
]

EXIT_DONE: Final = 0
EXIT_REFUSED: Final = 3
EXIT_FAILED: Final = 4
# How long one session command may run before it counts as hung (real seconds).
SESSION_WAIT_S: Final = 120.0


def fresh_home(home: Path, demo_pdata_dir: Path) -> Path:
    """A new workstation data directory at ``home`` with the demo P-Data already there
    (hard links to ``demo_pdata_dir``, as ``tests/conftest.py``'s ``pdata_home``)."""
    shutil.copytree(demo_pdata_dir, home / DEMO_DIR, copy_function=os.link)
    return home


async def plan_vehicle(home: Path, url: str) -> dict[str, Any]:
    """``ecuworks plan --json``: the plan as JSON."""
    code, out, err = await run_cli("--home", str(home), "plan", "--vci", url, "--json")
    assert code == EXIT_DONE, f"plan: exit {code}: {err}"
    plan: dict[str, Any] = json.loads(out)
    return plan


async def cut_at_first_bootloader_flash(
    sim: Simulator, pdata: PData, home: Path
) -> tuple[Plan, str]:
    """Program the f-series ``sim`` one ECU at a time, on the charger, until the gateway
    cuts the connection at the first request of the first bootloader flash (before its
    erase, so the ECU keeps its old bootloader). Returns the plan and the cut action's key;
    the session is left unfinished in ``home``'s journal for a resume."""
    url = url_of(sim, "f-series")
    sim.set_battery(volts=None, charger=True)
    planned = await make_plan(url, pdata)
    cut: list[str] = []

    def progress(event: Progress) -> None:
        if event.kind is Kind.ACTION and "/BlFlash/" in event.key and not cut:
            cut.append(event.key)
            sim.faults.add(DropFault(after_bytes=0), sim.now())

    options = RunOptions(tester_present_s=0.01, max_parallel=1)
    with pytest.raises(ProgrammingFailed, match="run 'ecuworks resume'"):
        await apply_plan(url, planned.plan, pdata, home, options=options, progress=progress)
    sim.faults.clear()
    return planned.plan, cut[0]


React = Callable[[list[str]], Awaitable[bool]]
"""Told the progress lines so far after each new one; True: signal the tester now."""


async def watch_session(
    home: Path,
    url: str,
    react: React,
    command: Sequence[str] = ("program",),
    *,
    stop: signal.Signals = signal.SIGKILL,
) -> tuple[list[str], str]:
    """Run ``command`` (``program``, or ``apply FILE``) and let ``react`` follow its
    progress log: break something at a chosen line, or send the tester ``stop`` there
    (SIGKILL, or SIGINT: the technician's Ctrl-C, after which it ends by itself).

    Returns:
        The progress lines seen until ``react`` said so, and, unless it was killed,
        ``exit CODE:`` and the last other lines it wrote (empty if it was killed).

    Raises:
        TimeoutError: it ran for more than :data:`SESSION_WAIT_S` (then it is killed).
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ecuworks",
        "--home",
        str(home),
        *command,
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
    signalled = killed = False
    try:
        async with asyncio.timeout(SESSION_WAIT_S):
            while not killed:
                line = (await process.stderr.readline()).decode()
                if not line:
                    break  # it ended by itself
                if line.startswith("[") and not signalled:
                    seen.append(line.strip())
                    signalled = await react(seen)
                    killed = signalled and stop is signal.SIGKILL
                    if signalled and not killed:
                        process.send_signal(stop)
                else:
                    other.append(line.strip())
    except BaseException:
        process.kill()
        await process.wait()
        raise
    # Kill only on purpose: after its stderr closed by itself, a kill() would reap the
    # process before asyncio's child watcher does, and its exit code would be lost (255).
    if killed:
        process.kill()
    code = await process.wait()
    return seen, "" if killed else f"exit {code}: " + " | ".join(other[-5:])


async def program_until_killed(
    home: Path, url: str, after_lines: int, command: Sequence[str] = ("program",)
) -> tuple[list[str], str]:
    """Start ``command`` and SIGKILL it once it has logged ``after_lines`` progress lines.

    Returns:
        As :func:`watch_session`: if it ended before the point, its exit code and the rest
        of what it wrote (empty if it was killed).
    """

    async def at_the_point(seen: list[str]) -> bool:
        return len(seen) >= after_lines

    return await watch_session(home, url, at_the_point, command)


async def resume(home: Path, url: str) -> tuple[int, str, str]:
    """``ecuworks resume --yes --json``: exit code, stdout (the report), stderr."""
    return await run_cli("--home", str(home), "resume", "--vci", url, "--yes", "--json", *FAST)


def car_problems(state: Mapping[str, Any], plan: Mapping[str, Any]) -> dict[str, str]:
    """What the simulator's ``/state`` says is wrong with the car after ``plan``.

    Returns:
        ``{ECU name: what is wrong}``: bricked, off or stuck in the bootloader, missing,
        or an SVK that is not the plan's target; ``"vehicle"`` for the I-level.
    """
    names = {str(e["address"]): str(e["name"]) for e in state["ecus"]}
    wrong = {
        str(e["name"]): f"mode {e['mode']}" for e in state["ecus"] if e["mode"] != "application"
    }
    actual = svt_of(dict(state))
    for address, units in plan["target_svt"].items():
        name = names.get(address, f"0x{int(address):02X}")
        if address not in actual:
            wrong[name] = "missing from the vehicle"
        elif actual[address] != sorted(units) and name not in wrong:
            wrong[name] = _svk_off(actual[address], units)
    if state["ilevel"]["current"] != plan["target_ilevel"]:
        wrong["vehicle"] = f"I-level {state['ilevel']['current']} is not {plan['target_ilevel']}"
    return wrong


def _svk_off(actual: Sequence[str], target: Sequence[str]) -> str:
    """How an SVK differs from the target, in its differing units only."""
    extra, missing = sorted(set(actual) - set(target)), sorted(set(target) - set(actual))
    return f"SVK holds {extra or 'nothing more'} instead of {missing or 'nothing'}"


async def tester_problems(url: str, plan: Mapping[str, Any], pdata: PData) -> dict[str, str]:
    """What identification over the VCI says is wrong: the tester's side of the verdict.

    Returns:
        ``{address as in the plan: what is wrong}`` for every ECU of the plan's target
        that does not answer in its application with the target SVK.
    """
    async with open_link(url) as link:
        ident = await identify_vehicle(link, pdata)
    seen = {str(e.address): e for e in ident.ecus}
    svt = ident.svt
    wrong: dict[str, str] = {}
    for address, units in plan["target_svt"].items():
        ecu = seen.get(address)
        if ecu is None or ecu.state is not EcuMode.APPLICATION:
            wrong[address] = "not found" if ecu is None else f"identified as {ecu.state}"
        elif sorted(svt.get(int(address), [])) != sorted(units):
            wrong[address] = "identified " + _svk_off(svt.get(int(address), []), units)
    return wrong


def record_problems(home: Path, vin: str, sessions_ended: int) -> list[str]:
    """What is lost from the workstation's records after the runs on one fresh home.

    Args:
        home: the data directory every run of the scenario used (and only they).
        vin: the vehicle.
        sessions_ended: how many session commands ran to an end (exit 0 or 4): each
            writes exactly one history record.

    Returns:
        One line per record lost (or doubled): history records missing or extra, a journal
        session not finished, an action of its plan without its Success, a chain that does
        not verify.
    """
    lost: list[str] = []
    database = open_database(default_url(home))
    try:
        records = [r for r in vehicle_records(database, vin) if r.kind == "program"]
        if broken := verify_chain(database, vin):
            lost.append(f"history chain of {vin} breaks at seq {broken.seq}: {broken.why}")
    finally:
        database.close()
    lost += [
        f"history record {n + 1} of {sessions_ended} missing"
        for n in range(len(records), sessions_ended)
    ]
    lost += [f"history record {r.seq} is one too many" for r in records[sessions_ended:]]
    done = [r for r in records if r.outcome == "done"]
    if len(done) != 1 or done[0].journal_session is None:
        return [*lost, f"{len(done)} history records say done (one expected)"]
    with Journal.open(home / JOURNAL_FILE) as journal:
        session = journal.session(done[0].journal_session)
        states = journal.states(session.id)
        if session.state != "finished":
            lost.append(f"journal session {session.id} is {session.state}, not finished")
        plan = Plan.from_bytes(session.plan_json.encode(), "journal plan")
        for action in plan.actions:
            event = states.get(action.key)
            if event is None or event.status != Status.SUCCESS:
                status = "no record" if event is None else f"last {event.status}"
                lost.append(f"journal: {action.key} has no Success ({status})")
    return lost
