"""Reports over the vehicle history: sessions per kind and outcome, success, duration.

A session succeeded when its outcome is ``done`` (a job that changed the vehicle) or
``read`` (a job that only read it); ``failed`` and ``refused`` did not. The duration is
the wall time a programming report records (``data["wall_s"]``); records without one are
not counted in the mean.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Final

from sqlalchemy import ColumnElement, case, func, select

from ecuworks.platform.db import Database
from ecuworks.platform.models import HistoryRecord

__all__ = ["SUCCESS", "KindReport", "Report", "session_report"]

SUCCESS: Final = frozenset({"done", "read"})


@dataclass(frozen=True)
class KindReport:
    """The sessions of one kind (``program``, ``code``, ...)."""

    kind: str
    outcomes: dict[str, int]
    mean_wall_s: float | None

    @property
    def total(self) -> int:
        """How many sessions of this kind."""
        return sum(self.outcomes.values())

    @property
    def success_rate(self) -> float:
        """The share of sessions that succeeded, 0 to 1."""
        return sum(n for o, n in self.outcomes.items() if o in SUCCESS) / self.total


@dataclass(frozen=True)
class Report:
    """Every kind's figures, and the latest sessions (newest first)."""

    kinds: list[KindReport]
    latest: list[HistoryRecord]

    @property
    def total(self) -> int:
        """How many sessions in all."""
        return sum(k.total for k in self.kinds)


def _wall_s(dialect: str) -> ColumnElement[float]:
    """``data["wall_s"]`` where it is a number of seconds, else NULL (SUM and COUNT skip
    NULLs); the JSON type test is each database's own."""
    value = HistoryRecord.data["wall_s"]
    if dialect == "postgresql":
        is_number = func.json_typeof(value) == "number"
    else:
        is_number = func.json_type(HistoryRecord.data, "$.wall_s").in_(("integer", "real"))
    seconds = value.as_float()
    # nested CASEs: the cast is evaluated only once the value is known to be a number
    return case((is_number, case((seconds >= 0, seconds))))


def session_report(database: Database, *, latest: int = 20) -> Report:
    """The report over the whole history, with the ``latest`` newest sessions.

    The database counts and sums per kind and outcome: the rows never leave it.
    """
    wall = _wall_s(database.dialect)
    outcomes: dict[str, dict[str, int]] = defaultdict(dict)
    seconds: dict[str, float] = defaultdict(float)
    timed: dict[str, int] = defaultdict(int)  # sessions with a duration
    with database.session() as session:
        groups = session.execute(
            select(
                HistoryRecord.kind,
                HistoryRecord.outcome,
                func.count(),
                func.coalesce(func.sum(wall), 0.0),
                func.count(wall),
            ).group_by(HistoryRecord.kind, HistoryRecord.outcome)
        ).all()
        newest = list(
            session.scalars(
                select(HistoryRecord)
                .order_by(HistoryRecord.at.desc(), HistoryRecord.id.desc())
                .limit(latest)
            )
        )
    for kind, outcome, sessions, total_s, with_wall in groups:
        outcomes[kind][outcome] = sessions
        seconds[kind] += float(total_s)
        timed[kind] += with_wall
    kinds = [
        KindReport(
            kind,
            dict(sorted(outcomes[kind].items())),
            seconds[kind] / timed[kind] if timed[kind] else None,
        )
        for kind in sorted(outcomes)
    ]
    return Report(kinds, newest)
