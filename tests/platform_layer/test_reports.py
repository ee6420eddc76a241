"""The session report, computed by the database: SQLite and PostgreSQL say the same."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.postgres import PostgresCluster

from ecuworks.platform import history
from ecuworks.platform.db import default_url, open_database
from ecuworks.platform.reports import session_report


def _entry(kind: str, outcome: str, data: dict[str, object]) -> history.Entry:
    return history.Entry(
        vin="WBA00000000000042",
        kind=kind,
        user="ada",
        workstation="bench-1",
        outcome=outcome,
        summary=f"{kind} {outcome}",
        data=data,
    )


def check_report(url: str) -> None:
    db = open_database(url)
    try:
        for entry in (
            _entry("program", "done", {"wall_s": 10}),
            _entry("program", "done", {"wall_s": 20.5}),
            _entry("program", "failed", {"wall_s": 30.0, "error": "x"}),
            _entry("program", "failed", {"error": "no report"}),
            _entry("program", "refused", {"wall_s": "12"}),  # not a number: not counted
            _entry("program", "refused", {"wall_s": -1.0}),  # not a duration either
            _entry("identify", "read", {}),
        ):
            history.append(db, entry)
        report = session_report(db, latest=3)
        kinds = {k.kind: k for k in report.kinds}
        assert list(kinds) == ["identify", "program"]
        assert kinds["program"].outcomes == {"done": 2, "failed": 2, "refused": 2}
        assert kinds["program"].mean_wall_s == pytest.approx(60.5 / 3)
        assert kinds["program"].success_rate == pytest.approx(2 / 6)
        assert (kinds["identify"].total, kinds["identify"].mean_wall_s) == (1, None)
        assert report.total == 7
        assert [r.summary for r in report.latest] == [
            "identify read",
            "program refused",
            "program refused",
        ]
    finally:
        db.close()


def test_the_report_on_sqlite(tmp_path: Path) -> None:
    check_report(default_url(tmp_path))


def test_the_report_on_postgresql(postgres: PostgresCluster) -> None:
    check_report(postgres.database())
