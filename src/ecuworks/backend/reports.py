"""Central reports per workshop and period, from the received history and issued codes.

- **Sessions**: every event in the period, by kind; one succeeded when its outcome is
  ``done`` or ``read`` (:data:`ecuworks.platform.reports.SUCCESS`).
- **Duration**: from the session reports that programming jobs store as their event's
  data (:meth:`ecuworks.execute.report.Report.to_json`): the mean ``seconds`` of each ECU
  that had actions, by ECU, and the mean ``wall_s`` by target I-level.
- **Failures**: failed events, counted by ECU and NRC. A session that stopped with an
  error stores ``data["error"]`` (:func:`ecuworks.platform.recording.record_failure`),
  whose text names the ECU (``DME (0x12): ...``) and, for an ECU's refusal, the NRC
  (``NRC 0x72``); a session that ran to its end and failed its final check names its
  failed ECUs in its report (status ``failed``).
- **FSCs** issued in the period, by application.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, select

from ecuworks.backend.models import Event, FscIssued
from ecuworks.platform.db import Database
from ecuworks.platform.reports import SUCCESS

__all__ = ["CentralReport", "central_report"]

TOP_FAILURES: Final = 10
_ECU_LABEL: Final = re.compile(r"^\s*(\S+) \(0x([0-9A-Fa-f]{1,4})\)")
_ECU_ADDRESS: Final = re.compile(r"from ECU 0x([0-9A-Fa-f]{1,4})")
_NRC: Final = re.compile(r"NRC 0x([0-9A-Fa-f]{2})(?: ([A-Za-z][\w-]*))?")


@dataclass
class CentralReport:
    """The figures of one workshop (or all) over one period."""

    workshop: str | None
    since: datetime | None
    until: datetime | None
    kinds: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    ecu_seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    ilevel_seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    fsc_by_app: dict[int, int] = field(default_factory=dict)

    @property
    def sessions(self) -> int:
        """Events in the period."""
        return sum(sum(c.values()) for c in self.kinds.values())

    @property
    def succeeded(self) -> int:
        """Events that succeeded."""
        return sum(n for c in self.kinds.values() for o, n in c.items() if o in SUCCESS)

    def to_json(self) -> dict[str, Any]:
        """The JSON of ``GET /api/v1/reports``."""
        return {
            "schema": 1,
            "workshop": self.workshop,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "sessions": {
                "total": self.sessions,
                "succeeded": self.succeeded,
                "success_rate": _rate(self.succeeded, self.sessions),
                "by_kind": [
                    {
                        "kind": kind,
                        "total": sum(c.values()),
                        "outcomes": dict(sorted(c.items())),
                        "success_rate": _rate(
                            sum(n for o, n in c.items() if o in SUCCESS), sum(c.values())
                        ),
                    }
                    for kind, c in sorted(self.kinds.items())
                ],
            },
            "duration": {
                "by_ecu": _means(self.ecu_seconds, "ecu"),
                "by_ilevel": _means(self.ilevel_seconds, "ilevel"),
            },
            "failures": {
                "total": sum(self.failures.values()),
                "top": [
                    {"ecu": ecu, "nrc": nrc or None, "count": count}
                    for (ecu, nrc), count in sorted(
                        self.failures.items(), key=lambda item: (-item[1], item[0])
                    )[:TOP_FAILURES]
                ],
            },
            "fsc": {
                "issued": sum(self.fsc_by_app.values()),
                "by_app": [
                    {"app_id": f"0x{app:04X}", "count": n}
                    for app, n in sorted(self.fsc_by_app.items())
                ],
            },
        }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _means(values: dict[str, list[float]], key: str) -> list[dict[str, Any]]:
    return [
        {key: name, "sessions": len(v), "mean_s": round(sum(v) / len(v), 3)}
        for name, v in sorted(values.items())
    ]


def _number(value: object) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    return float(value) if ok else None  # type: ignore[arg-type]


def _ecu_label(entry: dict[str, Any]) -> str | None:
    address, name = entry.get("ecu"), entry.get("name")
    if not isinstance(address, int) or not isinstance(name, str):
        return None
    return f"{name} (0x{address:02X})"


def _session_report(report: CentralReport, data: dict[str, Any]) -> list[str]:
    """Count a programming report's durations; the ECUs it says failed."""
    failed: list[str] = []
    ecus = data.get("ecus")
    for entry in ecus if isinstance(ecus, list) else ():
        label = _ecu_label(entry) if isinstance(entry, dict) else None
        if label is None:
            continue
        seconds = _number(entry.get("seconds"))
        actions = entry.get("actions")
        if seconds is not None and isinstance(actions, int) and actions > 0:
            report.ecu_seconds[label].append(seconds)
        if entry.get("status") == "failed":
            failed.append(label)
    wall, ilevel = _number(data.get("wall_s")), data.get("target_ilevel")
    if wall is not None and isinstance(ilevel, str) and isinstance(ecus, list):
        report.ilevel_seconds[ilevel].append(wall)
    return failed


def _failure(error: str) -> tuple[str, str]:
    """(ECU, NRC) named by a stopped session's error text; ``vehicle``/"" when none."""
    ecu = "vehicle"
    if found := _ECU_LABEL.search(error):
        ecu = f"{found[1]} (0x{int(found[2], 16):02X})"
    elif found := _ECU_ADDRESS.search(error):
        ecu = f"ECU 0x{int(found[1], 16):02X}"
    nrcs = _NRC.findall(error)
    if not nrcs:
        return ecu, ""
    code, name = nrcs[-1]  # the last attempt's refusal
    return ecu, f"0x{code.upper()} {name}".strip()


def _count(report: CentralReport, rows: Iterable[tuple[str, str, Any]]) -> None:
    for kind, outcome, stored in rows:
        report.kinds[kind][outcome] += 1
        data = stored if isinstance(stored, dict) else {}
        failed_ecus = _session_report(report, data)
        if outcome != "failed":
            continue
        error = data.get("error")
        if isinstance(error, str):
            report.failures[_failure(error)] += 1
        else:
            for ecu in failed_ecus or ["final check"]:
                report.failures[(ecu, "")] += 1


def central_report(
    database: Database,
    *,
    workshop_id: int | None,
    workshop: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> CentralReport:
    """The report of one workshop (``workshop_id``; None: every workshop) for events and
    codes at or after ``since`` and before ``until`` (either None: open)."""
    report = CentralReport(workshop, since, until)
    events = select(Event.kind, Event.outcome, Event.data)
    codes = select(FscIssued.app_id, func.count()).group_by(FscIssued.app_id)
    if workshop_id is not None:
        events = events.where(Event.workshop_id == workshop_id)
        codes = codes.where(FscIssued.workshop_id == workshop_id)
    if since is not None:
        events, codes = events.where(Event.at >= since), codes.where(FscIssued.at >= since)
    if until is not None:
        events, codes = events.where(Event.at < until), codes.where(FscIssued.at < until)
    with database.session() as session:
        _count(report, session.execute(events.execution_options(yield_per=1000)))
        report.fsc_by_app = dict(session.execute(codes).all())
    return report
