"""Reports over the vehicle history: sessions per kind and outcome, success, duration.

A session succeeded when its outcome is ``done`` (a job that changed the vehicle) or
``read`` (a job that only read it); ``failed`` and ``refused`` did not. The duration is
the wall time a programming report records (``data["wall_s"]``); records without one are
not counted in the mean.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select

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


def _wall_s(data: dict[str, object]) -> float | None:
    value = data.get("wall_s") if isinstance(data, dict) else None
    return float(value) if isinstance(value, int | float) and value >= 0 else None


def session_report(database: Database, *, latest: int = 20) -> Report:
    """The report over the whole history, with the ``latest`` newest sessions."""
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    walls: dict[str, list[float]] = defaultdict(list)
    with database.session() as session:
        rows = session.execute(
            select(HistoryRecord.kind, HistoryRecord.outcome, HistoryRecord.data)
        ).all()
        newest = list(
            session.scalars(
                select(HistoryRecord)
                .order_by(HistoryRecord.at.desc(), HistoryRecord.id.desc())
                .limit(latest)
            )
        )
    for kind, outcome, data in rows:
        outcomes[kind][outcome] += 1
        wall = _wall_s(data)
        if wall is not None:
            walls[kind].append(wall)
    kinds = [
        KindReport(
            kind,
            dict(sorted(outcomes[kind].items())),
            sum(walls[kind]) / len(walls[kind]) if walls[kind] else None,
        )
        for kind in sorted(outcomes)
    ]
    return Report(kinds, newest)
