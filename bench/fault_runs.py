"""One run of each scenario of the fault suite (``bench/faults.py`` runs and counts them).

A run gets a fresh workstation (:class:`Desk`) and a seeded random generator, breaks one
programming session (or one sync) the way its scenario says, lets the product recover the
way a technician would (``ecuworks resume``, up to :data:`MAX_RESUMES` times), and returns
a :class:`Verdict`: what it did, what is bricked, what is lost. The checks are those of
``tests/execute/crashing.py``, shared with the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
from sqlalchemy import func, select
from tests.execute.crashing import (
    EXIT_DONE,
    EXIT_FAILED,
    EXIT_REFUSED,
    car_problems,
    fresh_home,
    plan_vehicle,
    program_until_killed,
    record_problems,
    resume,
    tester_problems,
    watch_session,
)
from tests.platform_layer.test_sync import WORKSTATION, BackendProcess, history_entry
from tests.sim.flashing import control, read_state
from tests.sim.test_restart import SimProcess, kill_simulator, simulator_process

from ecuworks.backend.accounts import (
    Role,
    add_user,
    add_workshop,
    add_workstation,
    create_user_token,
)
from ecuworks.backend.db import default_backend_url, open_backend_database
from ecuworks.backend.models import Event
from ecuworks.pdata.source import PData
from ecuworks.platform.db import Database, default_url, open_database
from ecuworks.platform.history import append, vehicle_records, verify_chain
from ecuworks.platform.sync import Backoff, SyncWorker, configure, sync_status
from ecuworks.sim.simulator import Simulator

__all__ = ["SCENARIOS", "Desk", "Verdict", "Workbench"]

HOST: Final = "127.0.0.1"
# The simulated car runs 100 times faster than real time (the e2e tests' scale, with
# their tester present every 10 ms): a whole f-series session takes a few seconds.
TIME_SCALE: Final = 100.0
MAX_RESUMES: Final = 3
# Progress lines of an f-series session: 4 preparation steps, each ECU starting and done
# (about 60), the finishing steps. Kills spread over all of it; faults meant to land
# mid-flash go between the first ECU's start and the last ones' end.
ALL_LINES: Final = (1, 64)
FLASH_LINES: Final = (5, 50)
# Requests a storm answers with NRC 0x78 or 0x21 instead (ISO 14229-1 services of the
# flash sequence and of coding).
STORM_SERVICES: Final = (0x10, 0x11, 0x22, 0x27, 0x2E, 0x31, 0x34, 0x36, 0x37)
STORM_NRCS: Final = (0x78, 0x21)
# Sync outages: records a run writes, VINs they spread over, backend kills per run.
SYNC_RECORDS: Final = 300
SYNC_VINS: Final = [f"WBAFAULT000{n:06d}" for n in range(5)]
SYNC_KILLS: Final = (1, 3)
SYNC_WAIT_S: Final = 120.0


@dataclass
class Verdict:
    """What one run did and what it left broken.

    Attributes:
        what: one line: the fault and how the run went.
        problems: anything wrong (a command's exit, a check), for the failure report.
        bricked: ECUs not in their application at the target, by name.
        lost: records missing or doubled, one line each.
        recovered: the session ended done and nothing is bricked, lost or wrong.
    """

    what: str
    problems: list[str] = field(default_factory=list)
    bricked: set[str] = field(default_factory=set)
    lost: list[str] = field(default_factory=list)
    recovered: bool = True

    def __post_init__(self) -> None:
        self.recovered = self.recovered and not (self.problems or self.bricked or self.lost)


@dataclass(frozen=True)
class Desk:
    """One run's workstation: its data directory and a scratch directory."""

    home: Path
    scratch: Path
    pdata: PData


@dataclass(frozen=True)
class Workbench:
    """What every run shares: the demo P-Data, generated once."""

    root: Path
    demo: Path
    pdata: PData

    def fresh(self, name: str) -> Desk:
        """A new workstation for one run, its demo P-Data hard-linked in."""
        scratch = self.root / name
        scratch.mkdir()
        return Desk(fresh_home(scratch / "home", self.demo), scratch, self.pdata)


Scenario = Callable[[Desk, random.Random], Awaitable[Verdict]]


# --- the car and the recovery ---------------------------------------------------------------


def _url(ports: dict[str, int]) -> str:
    return f"hsfz://{HOST}:{ports['hsfz']}"


@contextlib.asynccontextmanager
async def _car() -> AsyncIterator[Simulator]:
    """The f-series car in this process on free loopback ports, on the charger."""
    sim = Simulator.on_free_ports(
        "f-series",
        time_scale=TIME_SCALE,
    )
    await sim.start()
    try:
        sim.set_battery(volts=None, charger=True)
        yield sim
    finally:
        await sim.stop()


def _exit_code(ended: str) -> int | None:
    """The exit code in ``watch_session``'s ``"exit N: ..."``; None when killed."""
    return int(ended.split()[1].rstrip(":")) if ended else None


async def _never(_seen: list[str]) -> bool:
    return False


async def _settle(
    desk: Desk, ports: dict[str, int], plan: dict[str, Any], first: int | None, what: str
) -> Verdict:
    """Resume until the session is done, then judge the car and the records.

    Args:
        desk: the run's workstation.
        ports: the simulator's ports (``hsfz``, ``control``).
        plan: the plan the session ran.
        first: the exit code of the broken session (None: it was killed).
        what: the run's line so far.
    """
    url = _url(ports)
    ended = int(first in (EXIT_DONE, EXIT_FAILED))
    problems: list[str] = []
    code, resumes = first, 0
    while code != EXIT_DONE and resumes < MAX_RESUMES:
        code, _, err = await resume(desk.home, url)
        resumes += 1
        ended += code in (EXIT_DONE, EXIT_FAILED)
        if code != EXIT_DONE:
            problems.append(f"resume {resumes}: exit {code}: {' '.join(err.split())[-400:]}")
        if code == EXIT_REFUSED:
            # Nothing a further resume would change. (A battery that reads low right after
            # the crash, while the interrupted ECUs still draw their programming current, is
            # waited for by the resume itself.)
            break
    if code == EXIT_DONE:
        problems.clear()  # a resume that stopped and a later one that finished: recovered
    what += f"; {resumes} resume(s)" if resumes else "; no resume needed"
    state = await read_state(ports["control"])
    names = {str(e["address"]): str(e["name"]) for e in state["ecus"]}
    car = car_problems(state, plan)
    tester = await tester_problems(url, plan, desk.pdata)
    bricked = {name for name in car if name != "vehicle"} | {
        names.get(address, address) for address in tester
    }
    problems += [f"{name}: {why}" for name, why in car.items()]
    problems += [f"tester sees {names.get(a, a)}: {why}" for a, why in tester.items()]
    lost = record_problems(desk.home, plan["vin"], ended)
    return Verdict(what=what, problems=problems, bricked=bricked, lost=lost)


# --- the scenarios ----------------------------------------------------------------------------


async def kills(desk: Desk, rng: random.Random) -> Verdict:
    """SIGKILL ``ecuworks program`` after a random line of its progress log."""
    after = rng.randint(*ALL_LINES)
    async with _car() as sim:
        plan = await plan_vehicle(desk.home, _url(sim.ports))
        seen, ended = await program_until_killed(desk.home, _url(sim.ports), after)
        where = seen[-1].split("] ", 1)[-1] if seen else "-"
        what = f"killed after line {after} ({where})" if not ended else f"ended first: {ended}"
        return await _settle(desk, sim.ports, plan, _exit_code(ended), what)


async def drops(desk: Desk, rng: random.Random) -> Verdict:
    """The gateway cuts the tester's connection after N bytes, N within the transfer."""
    async with _car() as sim:
        plan = await plan_vehicle(desk.home, _url(sim.ports))
        total = sum(int(a["bytes"]) for a in plan["actions"])
        after = rng.randrange(total // 50, total * 9 // 10)
        await control(
            sim.ports["control"], "POST", "/faults", {"kind": "drop", "after_bytes": after}
        )
        _, ended = await watch_session(desk.home, _url(sim.ports), _never)
        code = _exit_code(ended)
        what = f"dropped after {after:,} of {total:,} bytes: exit {code}"
        return await _settle(desk, sim.ports, plan, code, what)


async def sags(desk: Desk, rng: random.Random) -> Verdict:
    """The battery drops below the pause threshold mid-flash; the charger comes back."""
    line = rng.randint(*FLASH_LINES)
    volts = round(rng.uniform(10.8, 12.2), 2)
    unplug = rng.random() < 0.5
    duration = round(rng.uniform(20.0, 120.0), 1)  # simulated seconds (a scripted sag)
    paused: list[str] = []
    async with _car() as sim:
        port = sim.ports["control"]
        plan = await plan_vehicle(desk.home, _url(sim.ports))

        async def sag_at_the_line(seen: list[str]) -> bool:
            if len(seen) == line:
                if unplug:
                    await control(port, "POST", "/battery", {"volts": volts, "charger": False})
                else:
                    sag = {"kind": "sag", "at": 0.0, "volts": volts, "duration": duration}
                    await control(port, "POST", "/faults", sag)
            if "paused" in seen[-1] and not paused:
                paused.append(seen[-1])
                if unplug:
                    await control(port, "POST", "/battery", {"charger": True})
            return False

        _, ended = await watch_session(desk.home, _url(sim.ports), sag_at_the_line)
        await control(port, "POST", "/battery", {"charger": True})
        how = "charger off" if unplug else f"sag for {duration:g} s"
        code = _exit_code(ended)
        what = f"{how} at {volts} V after line {line}: {'paused' if paused else 'no pause'}"
        return await _settle(desk, sim.ports, plan, code, f"{what}, exit {code}")


async def storms(desk: Desk, rng: random.Random) -> Verdict:
    """0x78 and 0x21 answers at random requests of random ECUs over the whole session."""
    async with _car() as sim:
        port = sim.ports["control"]
        plan = await plan_vehicle(desk.home, _url(sim.ports))
        ecus = sorted({int(a["ecu"]) for a in plan["actions"]})
        count = rng.randint(20, 60)
        for _ in range(count):
            fault = {
                "kind": "nrc",
                "ecu": rng.choice(ecus),
                "service": rng.choice(STORM_SERVICES),
                "nth": rng.randint(1, 12),
                "nrc": rng.choice(STORM_NRCS),
            }
            await control(port, "POST", "/faults", fault)
        _, ended = await watch_session(desk.home, _url(sim.ports), _never)
        left = (await control(port, "GET", "/faults")).json()["faults"]
        await control(port, "DELETE", "/faults")
        code = _exit_code(ended)
        what = f"{count - len(left)} of {count} NRCs answered: exit {code}"
        verdict = await _settle(desk, sim.ports, plan, code, what)
        if code != EXIT_DONE:
            verdict.problems.append(f"the session under the storm did not finish: {ended}")
            verdict.recovered = False
        return verdict


async def restarts(desk: Desk, rng: random.Random) -> Verdict:
    """SIGKILL the simulator mid-programming; start it again on its state file and ports."""
    line = rng.randint(*FLASH_LINES)
    state_file = desk.scratch / "car.json"
    async with contextlib.AsyncExitStack() as stack:
        sims: list[SimProcess] = [
            await stack.enter_async_context(simulator_process(state_file, time_scale=TIME_SCALE))
        ]
        ports = sims[0].ports
        await control(ports["control"], "POST", "/battery", {"charger": True})
        plan = await plan_vehicle(desk.home, _url(ports))

        async def restart_at_the_line(seen: list[str]) -> bool:
            if len(seen) == line:
                await kill_simulator(sims[-1])
                sims.append(
                    await stack.enter_async_context(
                        simulator_process(state_file, time_scale=TIME_SCALE, ports=ports)
                    )
                )
            return False

        _, ended = await watch_session(desk.home, _url(ports), restart_at_the_line)
        code = _exit_code(ended)
        what = f"simulator restarted after line {line}: exit {code}"
        if len(sims) == 1:
            what = f"ended before line {line}: exit {code}"
        return await _settle(desk, ports, plan, code, what)


def _held(central: Database) -> list[str]:
    with central.session() as session:
        return list(session.scalars(select(Event.event_id)))


def _holds(central: Database, count: int) -> bool:
    """Whether the backend holds ``count`` events or more."""
    with central.session() as session:
        return (session.scalar(select(func.count()).select_from(Event)) or 0) >= count


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (in a thread: it reads a database) within :data:`SYNC_WAIT_S`."""
    deadline = time.monotonic() + SYNC_WAIT_S
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {SYNC_WAIT_S:g} s")
        await asyncio.sleep(0.05)  # polling a database with a deadline


async def outages(desk: Desk, rng: random.Random) -> Verdict:
    """Kill the backend while the workstation's sync worker pushes its history."""
    backend = BackendProcess(default_backend_url(desk.scratch), desk.scratch / "backend")
    backend.home.mkdir()
    central = open_backend_database(backend.db_url)
    workstation = open_database(default_url(desk.home))
    kills = rng.randint(*SYNC_KILLS)
    # Each kill comes once the backend holds a random share of the records.
    marks = sorted(rng.sample(range(SYNC_RECORDS // 10, SYNC_RECORDS * 9 // 10), kills))
    stop = asyncio.Event()
    try:
        add_workshop(central, "north")
        configure(workstation, backend.url, add_workstation(central, "north", WORKSTATION))
        add_user(central, "auditor", "correct horse battery", Role.ADMIN)
        admin = create_user_token(central, "auditor")
        worker = SyncWorker(workstation, idle_s=0.05, backoff=Backoff(base_s=0.05, cap_s=0.5))

        def produce() -> None:
            for n in range(SYNC_RECORDS):
                append(workstation, history_entry(SYNC_VINS[n % len(SYNC_VINS)], n))

        async with httpx.AsyncClient(timeout=30) as client:
            await backend.start(client)
            sending = asyncio.create_task(worker.run(stop))
            producing = asyncio.create_task(asyncio.to_thread(produce))
            try:
                for mark in marks:
                    await _until(
                        functools.partial(_holds, central, mark), f"{mark} records on the backend"
                    )
                    await backend.kill()
                    await backend.start(client)
                await producing
                await _until(lambda: sync_status(workstation).pending == 0, "the outbox empties")
            finally:
                stop.set()
                await asyncio.gather(sending, return_exceptions=True)
                producing.cancel()
            answer = await client.get(
                f"{backend.url}/api/v1/chains/verify", headers={"authorization": f"Bearer {admin}"}
            )
            verdict = answer.json()
        held = _held(central)
        written = [r.event_id for vin in SYNC_VINS for r in vehicle_records(workstation, vin)]
        breaks = [b for vin in SYNC_VINS if (b := verify_chain(workstation, vin)) is not None]
    finally:
        if backend.process is not None and backend.process.returncode is None:
            await backend.kill()
        workstation.close()
        central.close()
    missing = set(written) - set(held)
    lost = [f"event {e} is not on the backend" for e in sorted(missing)]
    lost += [
        f"event {e} is on the backend twice" for e in sorted({e for e in held if held.count(e) > 1})
    ]
    problems = (
        [f"the workstation wrote {len(written)} records, not {SYNC_RECORDS}"]
        if len(written) != SYNC_RECORDS
        else []
    )
    problems += [f"workstation chain {b.vin} breaks at {b.seq}: {b.why}" for b in breaks]
    if not verdict.get("ok"):
        problems.append(f"the backend's chains do not verify: {verdict.get('breaks')}")
    what = f"backend killed {kills}x at {marks} of {SYNC_RECORDS} records; {len(set(held))} held"
    return Verdict(what=what, problems=problems, lost=lost)


SCENARIOS: Final[dict[str, Scenario]] = {
    "kills": kills,
    "drops": drops,
    "sags": sags,
    "storms": storms,
    "restarts": restarts,
    "outages": outages,
}
