"""Every job writes the vehicle history: identify, then program, through the real CLI.

The simulator's own ``/state`` is the truth the records are checked against; a history
database that cannot be opened must not fail a job that programmed the car.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import StartSimulator
from tests.execute.test_program_e2e import FAST, control, svt_of, url_of
from tests.test_cli import run_cli

from ecuworks.platform import history
from ecuworks.platform.db import default_url, open_database


async def test_identify_and_program_leave_their_records(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series")
    url = url_of(sim, "f-series")
    await control(sim, "POST", "/battery", {"charger": True})
    before = svt_of(await control(sim, "GET", "/state"))
    home = ("--home", str(pdata_home))

    code, _, err = await run_cli(*home, "identify", "--vci", url)
    assert code == 0, err
    code, out, err = await run_cli(
        *home,
        "program",
        "--vci",
        url,
        "--target",
        "latest",
        "--yes",
        "--json",
        "--owner",
        "ada@bench-1",
        *FAST,
    )
    assert code == 0, err
    assert "warning" not in err
    report = json.loads(out)
    after = svt_of(await control(sim, "GET", "/state"))
    assert after != before

    db = open_database(default_url(pdata_home))
    try:
        records = history.vehicle_records(db, report["vin"])
        assert [r.kind for r in records] == ["identify", "program"]
        identified, programmed = records
        assert identified.outcome == "read"
        assert identified.svt_before == before
        assert programmed.outcome == "done"
        assert programmed.user == "ada@bench-1"
        assert programmed.journal_session == report["session"]
        assert programmed.svt_before == before
        assert programmed.svt_after == after
        assert programmed.data["final_check"] is True
        assert history.verify_chain(db, report["vin"]) is None
    finally:
        db.close()


async def test_a_history_that_cannot_be_written_does_not_fail_the_job(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series")
    url = url_of(sim, "f-series")
    await control(sim, "POST", "/battery", {"charger": True})
    before = svt_of(await control(sim, "GET", "/state"))

    code, out, err = await run_cli(
        "--home",
        str(pdata_home),
        "--db",
        "sqlite:////nonexistent/dir/x.sqlite3",
        "program",
        "--vci",
        url,
        "--target",
        "latest",
        "--yes",
        "--json",
        *FAST,
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["outcome"] == "done"
    assert svt_of(await control(sim, "GET", "/state")) != before
    assert "warning:" in err
    assert "not written to the vehicle history" in err
    assert f"still holds session {report['session']}" in err
