"""Runs a measures plan on a vehicle: pre-checks, preparation, parallel ECU jobs, finish.

:func:`run_plan` is the main job's last half. In order:

1. **Pre-checks, before anything is written**: the vehicle is the one the plan was made
   for (its fingerprint; on a resume, its VIN), the battery is within the
   :class:`~ecuworks.execute.power.PowerPolicy` (a resume first waits, as a pause does,
   for a battery that reads low because the interrupted ECUs still draw their programming
   current), every unit's image verifies against the
   signed P-Data, and no bootloader flash is retried that the journal says failed too
   often. A refusal raises :class:`~ecuworks.errors.Refused` (exit 3).
2. A journal session is opened (or the unfinished one continued); from here every step is
   journaled before the next begins.
3. **Preparation**: flash energy mode on the gateway, DTC setting and normal communication
   off on every ECU (functional requests), tester present kept up throughout.
4. **ECU jobs** (:class:`~ecuworks.execute.ecu_job.EcuJob`): the gateway first and alone,
   then the others in parallel, longest first, up to ``max_parallel`` at once; ECUs on one
   bus share it, which the simulator and a real bus enforce by themselves. The power gate
   holds back every new unit while the voltage is low, and so does a pause by hand
   (:class:`~ecuworks.execute.control.RunControl`); an abort ends the session there.
5. **Finish**: communication and DTC setting on, normal energy mode, the I-level triple and
   the VO written to the gateway, DTCs cleared and read again, and the final check: the
   SVT read back and compared with the plan's target.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ecuworks.enabling.fsc import FscSource
from ecuworks.errors import (
    LinkError,
    PDataMismatch,
    ProgrammingFailed,
    Refused,
    UdsError,
)
from ecuworks.execute.control import Aborted, RunControl
from ecuworks.execute.ecu_job import EcuJob, JobContext
from ecuworks.execute.journal import Journal, SessionRecord, Status
from ecuworks.execute.power import PowerPolicy
from ecuworks.execute.power_gate import PowerGate
from ecuworks.execute.progress import ProgressCallback, ignore
from ecuworks.execute.report import EcuReport, Report
from ecuworks.execute.reservation import Reservation
from ecuworks.execute.steps import Steps
from ecuworks.pdata.source import PData
from ecuworks.plan.model import Category, Plan
from ecuworks.transport.base import Link
from ecuworks.uds.client import Timing
from ecuworks.uds.functional import TesterPresent
from ecuworks.vehicle.identify import EcuMode, Identification

__all__ = ["RunOptions", "check_plan", "run_plan"]


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How to run a plan.

    Attributes:
        power: the voltage policy.
        attempts: tries per action (the trade's default is 3).
        max_parallel: ECU jobs at once after the gateway; 1 runs one ECU at a time.
        tester_present_s: seconds between functional tester presents (S3 is 5 s).
        voltage_poll_s: seconds between battery readings while programming.
        pause_limit_s: how long a low-voltage pause may last before the session stops
            (journal kept, ``resume`` possible).
        timing: UDS client timing.
        reservation: where to reserve the VCI for the session; None where there is no
            management address (the caller warns the technician).
        fsc_source: where enabling codes come from (FscDeploy); None if no issuer.
        issuer_key: the issuer's public key, to explain a code an ECU refuses.
        hardware_wait_s: how long a HwInstall waits for the technician.
        control: pause, resume and abort by hand; None when nobody can.
    """

    power: PowerPolicy = field(default_factory=PowerPolicy)
    attempts: int = 3
    max_parallel: int = 16
    tester_present_s: float = 1.5
    voltage_poll_s: float = 0.5
    pause_limit_s: float = 900.0
    timing: Timing = field(default_factory=Timing)
    reservation: Reservation | None = None
    fsc_source: FscSource | None = None
    issuer_key: bytes | None = None
    hardware_wait_s: float = 900.0
    control: RunControl | None = None


def check_plan(plan: Plan, ident: Identification, *, resuming: bool = False) -> None:
    """Refuse a plan that was not made for this vehicle as it is now.

    Raises:
        Refused: ``check="stale-plan"`` (another vehicle, or the vehicle changed).
    """
    if ident.vin != plan.vin:
        raise Refused(
            f"the plan is for VIN {plan.vin}, the connected vehicle is {ident.vin}; "
            "make a plan for this vehicle with 'ecuworks plan'",
            check="stale-plan",
        )
    if not resuming and ident.fingerprint != plan.vehicle_fingerprint:
        raise Refused(
            "the vehicle changed since the plan was made (its SVT, I-level or VO differ); "
            "make a new plan with 'ecuworks plan'. Nothing was written.",
            check="stale-plan",
        )


def _verify_images(plan: Plan, pdata: PData) -> None:
    """Every image of the plan verifies now, before anything is written.

    Raises:
        PDataMismatch: a unit that is unknown, altered or missing.
    """
    for action in plan.actions:
        if action.flashes and action.unit is not None:
            pdata.verify_unit(action.unit)


async def run_plan(
    link: Link,
    plan: Plan,
    pdata: PData,
    journal: Journal,
    ident: Identification,
    *,
    options: RunOptions | None = None,
    progress: ProgressCallback = ignore,
    resume: SessionRecord | None = None,
) -> Report:
    """Execute ``plan`` on the vehicle behind ``link``.

    Args:
        link: the open link.
        plan: the plan (for a resume, the journal's copy).
        pdata: verified programming data.
        journal: the journal.
        ident: the vehicle identified just now.
        options: how to run.
        progress: event callback.
        resume: the unfinished session to continue.

    Returns:
        The report; ``outcome`` is ``done`` only when the final check passed.

    Raises:
        Refused: a pre-check said no; nothing was written.
        PDataMismatch: an image failed verification before anything was written.
        ProgrammingFailed: an action failed for good; the journal says where.
    """
    opts = options or RunOptions()
    gate = PowerGate(
        link,
        plan.gateway,
        opts.power,
        progress,
        poll_s=opts.voltage_poll_s,
        pause_limit_s=opts.pause_limit_s,
    )
    flashing = await _pre_checks(plan, ident, pdata, opts, gate, resuming=resume is not None)
    catalog = pdata.catalog
    infos = {a: catalog.ecu(plan.series, a) for a in plan.ecus}
    if resume is None:
        session = journal.start_session(
            vin=plan.vin,
            fingerprint=plan.vehicle_fingerprint,
            target_ilevel=plan.target_ilevel,
            plan_json=plan.to_bytes().decode(),
        )
    else:
        session = resume
        _check_bootloader_retries(plan, journal, session, opts)
    states = journal.states(session.id)
    done = {key for key, event in states.items() if event.status == Status.SUCCESS}
    report = _new_report(plan, session.id, {a: info.name for a, info in infos.items()})
    control = opts.control or RunControl()
    control.bind(progress)
    ctx = JobContext(
        link=link,
        plan=plan,
        pdata=pdata,
        journal=journal,
        session_id=session.id,
        progress=progress,
        wait_power=_safe_point(control, gate.wait_open if flashing else _always_open),
        attempts=opts.attempts,
        timing=opts.timing,
        done=done,
        fsc_source=opts.fsc_source,
        issuer_key=opts.issuer_key,
        hardware_wait_s=opts.hardware_wait_s,
    )
    in_bootloader = {e.address for e in ident.ecus if e.state is EcuMode.BOOTLOADER}
    gateway_info = catalog.ecu(plan.series, plan.gateway)
    steps = Steps(link, plan, ident, gateway_info, journal, session.id, progress)
    started = time.monotonic()
    watcher: asyncio.Task[None] | None = None
    try:
        async with TesterPresent(link, opts.tester_present_s):
            for step in plan.steps:
                if step.phase == "prepare":
                    await steps.run(step.name)
            # The battery is watched while ECUs are flashed, and only then: the steps talk
            # to the gateway too, and one ECU answers one request at a time.
            if flashing:
                watcher = asyncio.create_task(gate.watch())
            jobs = {a: EcuJob(ctx, infos[a], recover=a in in_bootloader) for a in plan.ecus}
            await _run_jobs(jobs, plan, gate, opts, report, control)
            if watcher is not None:
                await _stop(watcher)
            await control.wait()
            for step in plan.steps:
                if step.phase == "finish":
                    await steps.run(step.name)
    except (LinkError, UdsError) as exc:
        journal.set_state(session.id, "failed", f"{type(exc).__name__}: {exc}")
        raise ProgrammingFailed(
            f"the vehicle stopped answering while programming ({exc}); the journal keeps "
            "where it stopped: check the connection and power, then run 'ecuworks resume'"
        ) from exc
    except (ProgrammingFailed, PDataMismatch, asyncio.CancelledError) as exc:
        journal.set_state(session.id, "failed", str(exc) or "cancelled")
        raise
    finally:
        if watcher is not None:
            await _stop(watcher)
    _conclude(report, time.monotonic() - started, ctx, gate, steps)
    journal.set_state(
        session.id,
        "finished" if report.final_check else "failed",
        "; ".join(report.mismatches),
    )
    return report


async def _pre_checks(
    plan: Plan,
    ident: Identification,
    pdata: PData,
    opts: RunOptions,
    gate: PowerGate,
    *,
    resuming: bool,
) -> bool:
    """Everything checked before anything is written; True if the plan flashes (then the
    battery is watched while it runs)."""
    check_plan(plan, ident, resuming=resuming)
    flashing = any(a.flashes for a in plan.actions)
    volts = ident.battery_volts
    if flashing:
        if resuming:
            volts = await gate.settle(volts)
        opts.power.check_start(volts)
    else:  # coding and enabling: no flash to brick, the battery must only be usable
        opts.power.check_usable(volts)
    _verify_images(plan, pdata)
    return flashing


async def _always_open() -> None:
    """The power gate of a job that writes no flash: coding needs no charger."""


def _safe_point(
    control: RunControl, power: Callable[[], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
    """What a job awaits before a new unit: no pause by hand, and the power gate open.

    An abort does not stop a job here: the ECU's job runs to its end (see RunControl)."""

    async def wait() -> None:
        await control.wait_unpaused()
        await power()
        while control.paused:  # paused while the battery held it back
            await control.wait_unpaused()

    return wait


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _conclude(
    report: Report, wall_s: float, ctx: JobContext, gate: PowerGate, steps: Steps
) -> None:
    report.wall_s = wall_s
    report.bytes_sent = ctx.bytes_sent
    report.min_volts = gate.min_volts
    report.pauses = gate.pauses
    steps.fill(report)
    report.outcome = "done" if report.final_check else "failed"


def _new_report(plan: Plan, session: int, names: dict[int, str]) -> Report:
    return Report(
        vin=plan.vin,
        session=session,
        target_ilevel=plan.target_ilevel,
        estimate_s=plan.estimate_s,
        lower_bound_s=plan.lower_bound_s,
        ecus=[EcuReport(ecu=a, name=names[a], actions=len(plan.actions_of(a))) for a in plan.ecus],
    )


def _check_bootloader_retries(
    plan: Plan, journal: Journal, session: SessionRecord, opts: RunOptions
) -> None:
    """Refuse to start a bootloader flash again that already failed ``attempts`` times."""
    for action in plan.actions:
        if action.category is not Category.BL_FLASH:
            continue
        event = journal.last(session.id, action.key)
        if event is not None and event.status == Status.SUCCESS:
            continue
        tries = journal.attempts(session.id, action.key)
        if tries >= opts.attempts:
            raise Refused(
                f"the bootloader of {action.ecu_name} (0x{action.ecu:02X}) was tried {tries} "
                "times in this session and failed; another try could leave the ECU dead. "
                "Have the ECU checked (power, wiring) before programming it again",
                check="journal",
            )


async def _run_jobs(  # noqa: PLR0917 -- the session's parts, passed down once
    jobs: dict[int, EcuJob],
    plan: Plan,
    gate: PowerGate,
    opts: RunOptions,
    report: Report,
    control: RunControl,
) -> None:
    """The gateway's job alone, then the others, longest first, ``max_parallel`` at once.

    An abort lets the jobs under way finish and starts no new one; then it is raised.
    """
    by_address = {r.ecu: r for r in report.ecus}

    async def one(address: int) -> None:
        entry = by_address[address]
        try:
            await control.wait()
        except Aborted:
            return
        entry.status = "running"
        try:
            await jobs[address].run()
        except BaseException:
            entry.status = "failed"
            raise
        entry.status = "done"
        entry.seconds = jobs[address].ended - jobs[address].started

    if plan.gateway in jobs:
        gate.gateway_busy = True
        try:
            await one(plan.gateway)
        finally:
            gate.gateway_busy = False
    others = [a for a in jobs if a != plan.gateway]
    ends = {s.ecu: s.end_s - s.start_s for s in plan.schedule}
    others.sort(key=lambda a: (-ends.get(a, 0.0), a))
    limit = asyncio.Semaphore(max(1, opts.max_parallel))

    async def bounded(address: int) -> None:
        async with limit:
            await one(address)

    try:
        async with asyncio.TaskGroup() as group:
            for address in others:
                group.create_task(bounded(address))
    except BaseExceptionGroup as group_error:
        # One ECU's failure stops the others at their next request; say the first one.
        raise group_error.exceptions[0] from None
    control.check()
