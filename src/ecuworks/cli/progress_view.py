"""Progress of a programming session in the terminal, and its report.

On a terminal: Rich progress bars, one overall (bytes, rate, ETA) and one per ECU while it
works. Without one (CI, a pipe): a line per ECU, step, failure and pause, so a log tells
the same story.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Final

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from ecuworks.cli.common import console, errors
from ecuworks.execute.progress import Kind
from ecuworks.execute.progress import Progress as Event
from ecuworks.execute.report import Report
from ecuworks.plan.model import Plan

__all__ = ["ProgressView", "render_report"]


class ProgressView:
    """A progress callback that draws bars, or prints lines without a terminal."""

    def __init__(self, plan: Plan, *, names: dict[int, str] | None = None, quiet: bool = False):
        self.plan = plan
        self.names = names or {a.ecu: a.ecu_name for a in plan.actions}
        self.quiet = quiet
        self.live = console.is_terminal and not quiet
        self.bars = Progress(
            TextColumn("{task.description:<22}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.total = self.bars.add_task("vehicle", total=max(1, plan.flash_bytes))
        self.tasks: dict[str, TaskID] = {}
        self.unit_done: dict[str, int] = {}
        self.started = time.monotonic()

    def __enter__(self) -> ProgressView:
        if self.live:
            self.bars.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.live:
            self.bars.stop()

    def _line(self, text: str) -> None:
        if self.quiet:
            return
        elapsed = time.monotonic() - self.started
        target = self.bars.console if self.live else errors
        target.print(f"[{elapsed:7.1f} s] {text}", highlight=False, soft_wrap=True)

    def _label(self, ecu: int | None) -> str:
        if ecu is None:
            return "vehicle"
        return f"{self.names.get(ecu, '?')} (0x{ecu:02X})"

    def __call__(self, event: Event) -> None:
        """Take one event."""
        if event.kind is Kind.BYTES:
            before = self.unit_done.get(event.key, 0)
            self.unit_done[event.key] = event.done
            self.bars.advance(self.total, event.done - before)
            task = self.tasks.get(event.key)
            if task is None and self.live:
                task = self.tasks[event.key] = self.bars.add_task(
                    self._label(event.ecu), total=event.total
                )
            if task is not None:
                self.bars.update(task, completed=event.done)
                if event.done >= event.total:
                    self.bars.remove_task(task)
                    del self.tasks[event.key]
        elif event.kind is Kind.ECU:
            verb = "starts" if event.status == "Started" else "done"
            self._line(f"{self._label(event.ecu)} {verb}")
        elif event.kind is Kind.STEP and event.status == "Success":
            self._line(f"{event.key.removeprefix('step/')} done")
        elif _worth_a_line(event):
            self._line(event.message)


def _worth_a_line(event: Event) -> bool:
    """A failed attempt, a pause or its end, a note."""
    if event.kind is Kind.ACTION:
        return event.status == "Failed"
    if event.kind is Kind.POWER:
        return bool(event.status)
    return event.kind is Kind.NOTE


# The report's title by job.
_TITLES: Final = {
    "program": "Programming",
    "code": "Coding",
    "expert-coding": "Expert coding",
    "enable": "Enabling",
    "retrofit": "Retrofit",
    "replace": "Replacement",
    "diag": "Fault memory",
}


def render_report(report: Report, plan: Plan, *, time_scale: float = 1.0) -> None:
    """The report a technician reads at the end.

    ``time_scale``: a simulated vehicle's time scale, to compare wall time with the plan.
    """
    title = _TITLES.get(plan.job, plan.job.capitalize())
    table = Table(title=f"{title} report, VIN {report.vin}")
    for column in ("ECU", "status", "actions", "seconds", "SVK at target", "DTCs"):
        table.add_column(column)
    for entry in report.ecus:
        table.add_row(
            f"{entry.name} (0x{entry.ecu:02X})",
            entry.status,
            str(entry.actions),
            f"{entry.seconds:.1f}",
            {True: "yes", False: "NO", None: "-"}[entry.svk_matches],
            "-" if entry.dtcs is None else str(entry.dtcs),
        )
    console.print(table)
    vehicle_s = report.wall_s * time_scale
    ratio = vehicle_s / plan.lower_bound_s if plan.lower_bound_s else 0.0
    scaled = "" if time_scale == 1 else f" = {vehicle_s:.1f} s at time scale {time_scale:g}"
    lines = [
        f"Outcome        {report.outcome.upper()}"
        + ("" if report.final_check else "  (final check failed)"),
        f"I-level        {plan.actual_ilevel} -> {report.target_ilevel}",
        f"Transferred    {report.bytes_sent / 1e6:.1f} MB",
        f"Wall time      {report.wall_s:.1f} s{scaled} (plan: estimate "
        f"{plan.estimate_s:.1f} s, lower bound {plan.lower_bound_s:.1f} s: {ratio:.2f}x)",
        "Battery        "
        + ("-" if report.min_volts is None else f"lowest {report.min_volts:.2f} V")
        + (f", paused {report.pauses} time(s)" if report.pauses else ""),
        f"Journal        session {report.session}",
    ]
    for line in lines:
        console.print(line, highlight=False)
    for line in report.mismatches:
        errors.print(f"mismatch: {line}", highlight=False, soft_wrap=True)
    for line in report.notes:
        errors.print(f"note: {line}", highlight=False, soft_wrap=True)
