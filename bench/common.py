"""What every benchmark shares: figures, the machine they ran on, and the goal table."""

from __future__ import annotations

import os
import platform
import pstats
import resource
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["figure", "machine", "peak_rss_mb", "print_goals", "process_peak_rss_mb", "profile_rows"]


def figure(
    name: str,
    value: float | None,
    unit: str,
    goal: str | None = None,
    met: bool | None = None,
    *,
    digits: int = 3,
) -> dict[str, Any]:
    """One figure of ``bench/out/*.json``: ``{"name","value","unit","goal","met"}``.

    ``met`` is worked out from a goal of the form ``">= N"`` or ``"< N"`` unless given.
    """
    if met is None and goal is not None:
        op, bound = goal.split()
        met = value is not None and (value >= float(bound) if op == ">=" else value < float(bound))
    value = None if value is None else round(value, digits)
    return {"name": name, "value": value, "unit": unit, "goal": goal, "met": met}


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (10^6 bytes; ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def process_peak_rss_mb(pid: int) -> float | None:
    """Another running process's peak resident set size in MB (``VmHWM`` in ``/proc``);
    None once it is gone or where there is no ``/proc``."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kib = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")), None)
    return None if kib is None else int(kib) * 1024 / 1e6


def machine() -> dict[str, Any]:
    """What the figures were measured on (take it before the run: the load average is then
    other processes' load)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        cpuinfo = []
    cpu = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
        platform.processor() or platform.machine(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def print_goals(
    console: Console,
    info: dict[str, Any],
    figs: list[dict[str, Any]],
    *,
    also: tuple[str, ...] = (),
    value_format: str = "{:,.1f}",
) -> None:
    """Warn when other processes loaded the machine, then table every figure with a goal
    (and those whose name starts with one of ``also``) beside it."""
    busy = info["load_average"][0]
    if busy > (info["cores"] or 1) / 2:
        console.print(
            f"[yellow]load average {busy:g} on {info['cores']} cores: other processes shared "
            "the CPUs, so these figures are low and noisy; run again on a quiet machine"
        )
    goals = Table("figure", "value", "target", "met")
    for f in figs:
        if f["goal"] is not None or f["name"].startswith(also or ("\0",)):
            value = "-" if f["value"] is None else f"{value_format.format(f['value'])} {f['unit']}"
            met = "" if f["met"] is None else "[green]yes" if f["met"] else "[red]no"
            goals.add_row(f["name"], value, f["goal"] or "", met)
    console.print(goals)


def profile_rows(path: Path) -> tuple[float, list[dict[str, Any]]]:
    """A cProfile dump as (total CPU s, one row per function: where, calls, own/cum s)."""
    stats = pstats.Stats(str(path))
    rows = []
    for (file, line, name), (_, calls, own, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{_short(file)}:{line}({name})" if line else name
        rows.append({"function": where, "calls": calls, "own_s": own, "cum_s": cum})
    return stats.total_tt, rows  # type: ignore[attr-defined]


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename
