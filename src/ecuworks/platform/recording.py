"""Turning what a job did into vehicle history records: one function per kind of job.

The command line and the web UI both call these, so a session looks the same in the
history wherever it ran. Each returns the stored record; the caller decides what a
database that cannot be written means (for a job that already programmed the car: a
warning, never a failure).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ecuworks.execute.report import Report
from ecuworks.plan.model import Plan
from ecuworks.platform.db import Database
from ecuworks.platform.history import Entry, append
from ecuworks.platform.models import HistoryRecord
from ecuworks.vehicle.dtc import FaultMemory, readable
from ecuworks.vehicle.identify import Identification

__all__ = [
    "record_dtc_read",
    "record_failure",
    "record_identify",
    "record_plan",
    "record_session",
]


def _svt(svt: Mapping[int, Sequence[str]]) -> dict[str, list[str]]:
    return {str(address): list(units) for address, units in svt.items()}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def record_identify(
    db: Database, ident: Identification, *, user: str, workstation: str
) -> HistoryRecord:
    """Record an identification: the SVT read, and the rest of ``identify --json``."""
    ilevel = str(ident.ilevel.current) if ident.ilevel is not None else "unknown"
    return append(
        db,
        Entry(
            vin=ident.vin,
            kind="identify",
            user=user,
            workstation=workstation,
            outcome="read",
            summary=f"identified at I-level {ilevel}, {len(ident.svt)} ECU(s) with an SVK",
            svt_before=_svt(ident.svt),
            data=ident.to_json(),
        ),
    )


def record_plan(db: Database, plan: Plan, *, user: str, workstation: str) -> HistoryRecord:
    """Record a plan made (nothing written to the vehicle): target, estimate, actions."""
    return append(
        db,
        Entry(
            vin=plan.vin,
            kind="plan",
            user=user,
            workstation=workstation,
            outcome="done",
            summary=(
                f"{plan.job} plan {plan.actual_ilevel or 'unknown'} -> {plan.target_ilevel}: "
                f"{len(plan.actions)} action(s), estimate {_minutes(plan.estimate_s)}"
            ),
            svt_before=_svt(plan.actual_svt),
            data={
                "job": plan.job,
                "actual_ilevel": plan.actual_ilevel,
                "target_ilevel": plan.target_ilevel,
                "estimate_s": round(plan.estimate_s, 3),
                "lower_bound_s": round(plan.lower_bound_s, 3),
                "actions": len(plan.actions),
                "ecus": len(plan.ecus),
            },
        ),
    )


def record_session(
    db: Database, report: Report, plan: Plan, *, user: str, workstation: str
) -> HistoryRecord:
    """Record a session that ran ``plan`` to its end (kind = the plan's job).

    ``svt_before`` is the SVT the plan was made from, ``svt_after`` what the final check
    read (None when it did not run); the journal keeps the steps, linked by session id.
    """
    if report.outcome == "done":
        summary = f"{plan.job} to {plan.target_ilevel} done in {_minutes(report.wall_s)}"
    else:
        summary = f"{plan.job} to {plan.target_ilevel} failed the final check: " + (
            "; ".join(report.mismatches) or "see the report"
        )
    return append(
        db,
        Entry(
            vin=report.vin,
            kind=plan.job,
            user=user,
            workstation=workstation,
            outcome=report.outcome,
            summary=summary,
            svt_before=_svt(plan.actual_svt),
            svt_after=None if report.svt_after is None else _svt(report.svt_after),
            journal_session=report.session,
            data=report.to_json(),
        ),
    )


def record_failure(
    db: Database,
    plan: Plan,
    reason: str,
    *,
    session: int | None,
    user: str,
    workstation: str,
) -> HistoryRecord:
    """Record a session of ``plan`` that stopped with an error (``reason``, as shown)."""
    return append(
        db,
        Entry(
            vin=plan.vin,
            kind=plan.job,
            user=user,
            workstation=workstation,
            outcome="failed",
            summary=f"{plan.job} to {plan.target_ilevel} stopped: {reason}",
            svt_before=_svt(plan.actual_svt),
            journal_session=session,
            data={"target_ilevel": plan.target_ilevel, "error": reason},
        ),
    )


def record_dtc_read(
    db: Database, memory: FaultMemory, *, vin: str, user: str, workstation: str
) -> HistoryRecord:
    """Record a read of the fault memory (the ``diag dtc --json`` object as data)."""
    entries = f"{memory.entries} entr{'y' if memory.entries == 1 else 'ies'}"
    return append(
        db,
        Entry(
            vin=vin,
            kind="dtc-read",
            user=user,
            workstation=workstation,
            outcome="read",
            summary=f"fault memory read: {entries} in {len(readable(memory))} ECU(s)",
            data=memory.to_json(),
        ),
    )
