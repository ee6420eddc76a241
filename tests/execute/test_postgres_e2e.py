"""The main job with ``--db`` pointing at PostgreSQL: the car is programmed to its target
and the session's history record is in PostgreSQL, linked to the journal session."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import StartSimulator
from tests.execute.test_program_e2e import FAST, control, svt_of, url_of
from tests.postgres import PostgresCluster
from tests.test_cli import run_cli

from ecuworks.platform import history
from ecuworks.platform.db import DB_FILE, open_database


async def test_program_with_a_postgresql_history(
    start_simulator: StartSimulator, pdata_home: Path, tmp_path: Path, postgres: PostgresCluster
) -> None:
    sim = await start_simulator("f-series")
    url = url_of(sim, "f-series")
    await control(sim, "POST", "/battery", {"charger": True})
    before = svt_of(await control(sim, "GET", "/state"))
    database_url = postgres.database()
    common = ("--home", str(pdata_home), "--db", database_url)

    plan_file = tmp_path / "plan.json"
    code, _, err = await run_cli(*common, "plan", "--vci", url, "-o", str(plan_file))
    assert code == 0, err
    plan = json.loads(plan_file.read_text())
    code, out, err = await run_cli(
        *common, "program", "--vci", url, "--target", "latest", "--yes", "--json", *FAST
    )
    assert code == 0, err
    assert "warning" not in err
    report = json.loads(out)

    state = await control(sim, "GET", "/state")
    target = {k: sorted(v) for k, v in plan["target_svt"].items()}
    actual = svt_of(state)
    assert {k: actual[k] for k in target} == target
    assert state["ilevel"]["current"] == plan["target_ilevel"]
    assert not (pdata_home / DB_FILE).exists(), "the history went to PostgreSQL only"

    db = open_database(database_url)
    try:
        assert db.dialect == "postgresql"
        records = history.vehicle_records(db, report["vin"])
        assert [r.kind for r in records] == ["plan", "program"]
        programmed = records[-1]
        assert programmed.outcome == "done"
        assert programmed.journal_session == report["session"]
        assert programmed.svt_before == before
        assert programmed.svt_after == actual
        assert records[0].data["target_ilevel"] == plan["target_ilevel"]
        assert history.verify_chain(db, report["vin"]) is None
    finally:
        db.close()
