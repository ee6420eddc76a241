"""``ecuworks plan`` as a real process against the simulated vehicle."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import StartSimulator
from tests.test_cli import run_cli
from tests.vehicle.test_identify import url_of

from ecuworks.plan import Plan
from ecuworks.plan.model import SCHEMA


async def test_plan_prints_json_and_saves_the_same_plan(
    start_simulator: StartSimulator, pdata_home: Path, tmp_path: Path
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    saved = tmp_path / "plan.json"
    code, out, err = await run_cli(
        "--home", str(pdata_home), "plan", "--vci", url_of(sim), "--json", "-o", str(saved),
        "--filter", "must-not:BlFlash", "--timeout", "0.5",
    )  # fmt: skip
    assert code == 0, err
    document = json.loads(out)
    assert (document["schema"], document["vin"]) == (SCHEMA, sim.state.vin)
    assert document["actions"]
    assert not [a for a in document["actions"] if a["category"] == "BlFlash"]
    assert document["estimate_s"] >= document["lower_bound_s"] > 0
    plan = Plan.from_bytes(saved.read_bytes())
    assert plan.to_json() == document
    assert set(plan.actual_svt) == {e.address for e in sim.profile.ecus}


async def test_plan_prints_a_table_and_refuses_a_bad_target_or_filter(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    home = ("--home", str(pdata_home))
    code, out, err = await run_cli(*home, "plan", "--vci", url_of(sim), "--timeout", "0.5")
    assert code == 0, err
    assert "SwDeploy" in out
    assert "lower bound" in out
    code, _, err = await run_cli(*home, "plan", "--vci", url_of(sim), "--target", "F030-15-07-520")
    assert code == 2
    assert "downgrade refused" in err
    code, _, err = await run_cli(*home, "plan", "--vci", url_of(sim), "--filter", "must:Coffee")
    assert code == 2
    assert "Coffee" in err
