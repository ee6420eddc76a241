"""Programming sessions the web UI runs in the background, and what they show while running.

One :class:`RunManager` per app (``app.state.runs``) starts a session as an asyncio task in
the server's event loop, keeps each run's state up to date from the runner's progress
events (per ECU bytes done of total, overall share and ETA, battery voltage, the
vehicle-wide steps, the final report), and wakes the status pages that follow a run by
server-sent events. At the end it writes the vehicle history record and the audit line.

Identifications and plans made in the UI are kept here too, by id, for a while: a plan is
started by its id, so that what the technician saw is what runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

from ecuworks.errors import DatabaseError, EcuworksError
from ecuworks.execute.control import RunControl
from ecuworks.execute.progress import Kind, Progress
from ecuworks.execute.report import Report
from ecuworks.execute.runner import RunOptions
from ecuworks.execute.session import apply_plan
from ecuworks.pdata.source import PData, open_pdata
from ecuworks.plan.model import Plan
from ecuworks.platform.db import Database
from ecuworks.platform.models import HistoryRecord
from ecuworks.platform.recording import record_failure, record_session
from ecuworks.platform.users import audit
from ecuworks.vehicle.identify import Identification

__all__ = ["EcuProgress", "Identified", "Planned", "Run", "RunManager", "Started", "Store"]

_T = TypeVar("_T")
_KEEP: Final = 50  # identifications, plans and runs remembered per kind
_NOTES: Final = 40  # lines of a run's log kept


class Store(Generic[_T]):
    """The last :data:`_KEEP` things of one kind, by a random id."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, _T] = OrderedDict()

    def add(self, item: _T) -> str:
        """Keep ``item``; returns its new id (the oldest one is forgotten past the limit)."""
        key = secrets.token_urlsafe(9)
        self._items[key] = item
        while len(self._items) > _KEEP:
            self._items.popitem(last=False)
        return key

    def get(self, key: str) -> _T | None:
        """The item with that id, or None."""
        return self._items.get(key)

    def items(self) -> list[tuple[str, _T]]:
        """Every (id, item), newest first."""
        return list(reversed(self._items.items()))


@dataclass(frozen=True, kw_only=True)
class Identified:
    """A vehicle identified from the UI: on which interface, its ECUs' names."""

    interface: str
    ident: Identification
    names: dict[int, str]
    targets: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Planned:
    """A plan made from the UI, to be started by its id."""

    interface: str
    plan: Plan
    user: str
    warning: str | None = None


@dataclass(kw_only=True)
class EcuProgress:
    """One ECU's bar: bytes of its units (or its actions, when it flashes nothing)."""

    address: int
    name: str
    planned: dict[str, int]  # flash action key -> planned bytes
    actions: int
    status: str = "waiting"
    units: dict[str, tuple[int, int]] = field(default_factory=dict)
    actions_done: int = 0

    @property
    def maximum(self) -> int:
        """The bar's ``max``."""
        if not self.planned:
            return max(1, self.actions)
        return max(1, sum(self.units.get(k, (0, b))[1] or b for k, b in self.planned.items()))

    @property
    def value(self) -> int:
        """The bar's ``value``."""
        if self.status in ("done", "unchanged"):
            return self.maximum
        done = sum(d for d, _ in self.units.values()) if self.planned else self.actions_done
        return min(done, self.maximum)

    @property
    def percent(self) -> int:
        """Whole per cent done."""
        return int(100 * self.value / self.maximum)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "ecu": self.address,
            "name": self.name,
            "status": self.status,
            "value": self.value,
            "max": self.maximum,
            "percent": self.percent,
        }


@dataclass(kw_only=True)
class Run:
    """One programming session started from the web UI, as its status page shows it."""

    id: str
    plan: Plan
    plan_id: str
    user: str
    interface: str
    time_scale: float
    control: RunControl = field(default_factory=RunControl)
    state: str = "starting"
    ecus: dict[int, EcuProgress] = field(default_factory=dict)
    steps: dict[str, str] = field(default_factory=dict)
    volts: float | None = None
    waiting: str | None = None
    waiting_ecu: int | None = None
    notes: deque[str] = field(default_factory=lambda: deque(maxlen=_NOTES))
    report: Report | None = None
    error: str | None = None
    history_seq: int | None = None
    recorded: bool = False
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    version: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        for address in self.plan.ecus:
            actions = self.plan.actions_of(address)
            self.ecus[address] = EcuProgress(
                address=address,
                name=actions[0].ecu_name if actions else f"0x{address:02X}",
                planned={a.key: a.bytes for a in actions if a.flashes},
                actions=len(actions),
                status="waiting" if actions else "unchanged",
            )
        self.steps = {step.name: "waiting" for step in self.plan.steps}

    @property
    def over(self) -> bool:
        """True once the session ended, whichever way."""
        return self.state in ("done", "failed", "aborted")

    @property
    def overall(self) -> float:
        """Share done, 0..1, each ECU weighted by its planned time."""
        if self.state == "done":
            return 1.0
        weights = {s.ecu: max(s.end_s - s.start_s, 1.0) for s in self.plan.schedule}
        total = sum(weights.get(a, 1.0) for a in self.ecus) or 1.0
        done = sum(weights.get(a, 1.0) * e.value / e.maximum for a, e in self.ecus.items())
        return done / total

    @property
    def eta_s(self) -> float | None:
        """Seconds left, extrapolated from the share done so far; None once over."""
        if self.over:
            return None
        share = self.overall
        elapsed = time.monotonic() - self.started
        if share < 0.02:  # too early to extrapolate: the plan's estimate, at the time scale
            return max(self.plan.estimate_s / self.time_scale - elapsed, 0.0)
        return elapsed * (1 - share) / share

    @property
    def elapsed_s(self) -> float:
        """Seconds since the start (until the end)."""
        return (self.ended or time.monotonic()) - self.started

    def wait_change(self) -> asyncio.Event:
        """An event set at the next change of this run's state."""
        return self._changed

    def changed(self) -> None:
        """Wake everyone waiting for a change."""
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    def apply(self, event: Progress) -> None:
        """Take one progress event of the runner (never raises, returns at once)."""
        handler = _HANDLERS.get(event.kind)
        if handler is not None:
            handler(self, event)
        if event.message:
            self.notes.append(event.message)
        self.changed()

    def to_json(self) -> dict[str, Any]:
        """The JSON state of ``GET /api/programming/runs/{id}``."""
        eta = self.eta_s
        return {
            "id": self.id,
            "plan": self.plan_id,
            "vin": self.plan.vin,
            "target_ilevel": self.plan.target_ilevel,
            "interface": self.interface,
            "user": self.user,
            "state": self.state,
            "overall_percent": round(100 * self.overall, 1),
            "eta_s": None if eta is None else round(eta, 1),
            "elapsed_s": round(self.elapsed_s, 1),
            "battery_volts": self.volts,
            "waiting_for_technician": self.waiting,
            "ecus": [e.to_json() for e in self.ecus.values()],
            "steps": [{"name": k, "status": v} for k, v in self.steps.items()],
            "notes": list(self.notes),
            "report": None if self.report is None else self.report.to_json(),
            "error": self.error,
            "history_seq": self.history_seq,
        }


def _on_ecu(run: Run, event: Progress) -> None:
    entry = run.ecus.get(event.ecu if event.ecu is not None else -1)
    if entry is not None:
        entry.status = {"Started": "running", "Success": "done"}.get(event.status, entry.status)


def _on_action(run: Run, event: Progress) -> None:
    entry = run.ecus.get(event.ecu if event.ecu is not None else -1)
    if entry is None or event.status != "Success":
        return
    entry.actions_done += 1
    if event.key in entry.planned:
        _, total = entry.units.get(event.key, (0, entry.planned[event.key]))
        entry.units[event.key] = (total, total)


def _on_bytes(run: Run, event: Progress) -> None:
    entry = run.ecus.get(event.ecu if event.ecu is not None else -1)
    if entry is not None and event.key in entry.planned:
        entry.units[event.key] = (event.done, event.total)


def _on_step(run: Run, event: Progress) -> None:
    name = event.key.removeprefix("step/")
    run.steps[name] = {"Started": "running", "Success": "done"}.get(event.status, event.status)


def _on_power(run: Run, event: Progress) -> None:
    if event.volts is not None:
        run.volts = event.volts


def _on_note(run: Run, event: Progress) -> None:
    if event.status == "waiting":
        run.waiting = event.message  # the technician's hardware step
        run.waiting_ecu = event.ecu
    elif run.waiting is not None and event.ecu == run.waiting_ecu:
        run.waiting = None  # that ECU's part answers
    if event.status in ("paused", "resumed", "aborted") and not run.over:
        run.state = {"paused": "paused", "resumed": "running", "aborted": "aborting"}[event.status]


_HANDLERS: Final = {
    Kind.ECU: _on_ecu,
    Kind.ACTION: _on_action,
    Kind.BYTES: _on_bytes,
    Kind.STEP: _on_step,
    Kind.POWER: _on_power,
    Kind.NOTE: _on_note,
}


@dataclass(frozen=True, kw_only=True)
class Started:
    """What a run needs besides its plan: where, as whom, with which options."""

    vci_url: str
    options: RunOptions
    workstation: str


class RunManager:
    """The web UI's runs, identifications and plans.

    Args:
        home: the data directory (P-Data, journal).
        db: the platform database (history, audit).
        time_scale: the simulated vehicle's time scale (1 for a real car), for the ETA.
    """

    def __init__(self, home: Path, db: Database, *, time_scale: float = 1.0) -> None:
        self.home = home
        self.db = db
        self.time_scale = time_scale
        self.identified: Store[Identified] = Store()
        self.plans: Store[Planned] = Store()
        self.runs: Store[Run] = Store()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pdata: PData | None = None

    async def pdata(self) -> PData:
        """The workstation's P-Data, opened (and verified) once, off the event loop."""
        if self._pdata is None:
            pdata = await asyncio.to_thread(open_pdata, self.home)
            await asyncio.to_thread(lambda: pdata.catalog)
            self._pdata = pdata
        return self._pdata

    def forget_pdata(self) -> None:
        """Open the P-Data again at its next use (after a sync brought new data)."""
        self._pdata = None

    def start(self, plan: Plan, plan_id: str, *, user: str, interface: str, how: Started) -> Run:
        """Start programming ``plan`` in the background; returns the run to follow."""
        control = RunControl()
        run = Run(
            id="",
            plan=plan,
            plan_id=plan_id,
            user=user,
            interface=interface,
            time_scale=self.time_scale,
            control=control,
        )
        run.id = self.runs.add(run)
        options = replace(how.options, control=control)
        task = asyncio.create_task(self._execute(run, how, options), name=f"run {run.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run

    async def _execute(self, run: Run, how: Started, options: RunOptions) -> None:
        run.state = "running"
        run.changed()
        report: Report | None = None
        try:
            pdata = await self.pdata()
            report = await apply_plan(
                how.vci_url, run.plan, pdata, self.home, options=options, progress=run.apply
            )
        except EcuworksError as error:
            run.error = str(error)
            run.state = "aborted" if run.control.aborted_by else "failed"
        else:
            run.report = report
            run.state = "done" if report.outcome == "done" else "failed"
        run.ended = time.monotonic()
        run.waiting = None
        await asyncio.to_thread(self._record, run, report, how.workstation)
        run.recorded = True
        run.changed()

    def _record(self, run: Run, report: Report | None, workstation: str) -> None:
        """The history record and the audit line; a database failure is only said."""
        plan = run.plan
        try:
            record: HistoryRecord
            if report is not None:
                record = record_session(
                    self.db, report, plan, user=run.user, workstation=workstation
                )
            else:
                record = record_failure(
                    self.db,
                    plan,
                    run.error or "stopped",
                    session=None,
                    user=run.user,
                    workstation=workstation,
                )
            run.history_seq = record.seq
            audit(
                self.db,
                run.user,
                plan.job,
                vin=plan.vin,
                detail=f"{plan.target_ilevel} via {run.interface}: {run.state}"
                + (f" ({run.error})" if run.error else ""),
            )
        except DatabaseError as error:
            run.notes.append(f"the vehicle history could not be written: {error}")

    async def follow(self, run: Run) -> AsyncIterator[Run]:
        """Yield ``run`` now and after each change (coalesced), until it is recorded."""
        seen = -1
        while True:
            waiting = run.wait_change()
            if run.version == seen:
                await waiting.wait()
                continue
            seen = run.version
            yield run
            if run.recorded:
                return

    async def close(self) -> None:
        """Cancel the running sessions (their journal keeps them resumable)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
