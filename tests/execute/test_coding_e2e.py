"""Coding end to end, as a technician runs it: `code` (VO coding), `code get` and `code set`.

A simulated F-series car runs in this process; the real command line drives it over HSFZ on
loopback in a child process. What counts is the simulator's own ``/state``: every ECU's
coding records decode, with the P-Data's layout, to exactly what the VO's coding rules give,
and their checksums hold; an expert change that contradicts the VO is warned about, lands
in the ECU, and is in the journal with that reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import StartSimulator
from tests.execute.test_program_e2e import FAST, control, url_of
from tests.test_cli import run_cli

from ecuworks.coding.expert import decode_value, parameter_values, vo_value
from ecuworks.execute.journal import Journal, Status
from ecuworks.pdata.catalog import Catalog
from ecuworks.pdata.source import open_pdata
from ecuworks.plan.model import Plan
from ecuworks.transport.url import open_link
from ecuworks.uds.client import Timing, UdsClient
from ecuworks.wire.uds import Session
from ecuworks.wire.vo import VehicleOrder

HU = 0x63
PARAM = "variant_3000"


def records_of(ecu: dict[str, Any]) -> dict[int, bytes]:
    return {int(did, 16): bytes.fromhex(data) for did, data in ecu["coding"].items()}


def coded_values(catalog: Catalog, state: dict[str, Any]) -> dict[int, dict[str, str | None]]:
    """Every coded ECU's parameters, decoded from ``/state`` with the P-Data layout."""
    out = {}
    for ecu in state["ecus"]:
        layout = catalog.ecu(state["series"], ecu["address"]).coding
        if layout.parameters:
            records = records_of(ecu)
            out[ecu["address"]] = {
                p.name: decode_value(layout, records, p.name) for p in layout.parameters
            }
    return out


def vo_values(catalog: Catalog, state: dict[str, Any]) -> dict[int, dict[str, str | None]]:
    vo = VehicleOrder.parse(state["vo"]["text"])
    return {
        ecu["address"]: dict(catalog.coding_values(state["series"], ecu["address"], vo))
        for ecu in state["ecus"]
        if catalog.ecu(state["series"], ecu["address"]).coding.parameters
    }


def bad_checksums(catalog: Catalog, state: dict[str, Any]) -> list[str]:
    bad = []
    for ecu in state["ecus"]:
        records = records_of(ecu)
        for record in catalog.ecu(state["series"], ecu["address"]).coding.records:
            data = records[record.did]
            if record.with_checksum(data) != data:
                bad.append(f"{ecu['name']} 0x{record.did:04X}")
    return bad


async def upset_coding(url: str, state: dict[str, Any]) -> None:
    """Write every coding record inverted, checksum and all, as a bad coding would leave it."""
    async with open_link(url) as link:
        for ecu in state["ecus"]:
            if not ecu["coding"]:
                continue
            client = UdsClient(link, ecu["address"], timing=Timing(p2=5.0))
            await client.change_session(Session.EXTENDED)
            await client.change_session(Session.CODING)
            for did, data in records_of(ecu).items():
                await client.write_did(did, bytes(b ^ 0xFF for b in data))
            await client.change_session(Session.DEFAULT)


async def test_vo_coding_codes_every_ecu_as_its_rules_say(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series")
    url = url_of(sim, "f-series")
    await control(sim, "POST", "/battery", {"charger": True})
    catalog = open_pdata(pdata_home).catalog
    home = ("--home", str(pdata_home))
    await upset_coding(url, await control(sim, "GET", "/state"))
    upset = await control(sim, "GET", "/state")
    wanted = vo_values(catalog, upset)
    assert len(wanted) > 10
    assert coded_values(catalog, upset) != wanted
    assert bad_checksums(catalog, upset)

    # One ECU by name first: only it is coded.
    code, _, err = await run_cli(*home, "code", "--vci", url, "--ecu", "HU", "--yes", *FAST)
    assert code == 0, err
    partly = await control(sim, "GET", "/state")
    decoded = coded_values(catalog, partly)
    assert decoded[HU] == wanted[HU]
    assert [a for a in wanted if a != HU and decoded[a] == wanted[a]] == []

    code, out, err = await run_cli(*home, "code", "--vci", url, "--yes", "--json", *FAST)
    assert code == 0, err
    assert json.loads(out)["outcome"] == "done"
    after = await control(sim, "GET", "/state")
    assert coded_values(catalog, after) == wanted
    assert bad_checksums(catalog, after) == []
    # Coding installs the CAFDs and flashes nothing.
    assert {e["address"]: e["programming_counter"] for e in after["ecus"]} == {
        e["address"]: e["programming_counter"] for e in upset["ecus"]
    }


async def test_an_unknown_ecu_is_a_usage_error_listing_the_series_ecus(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series")
    url = url_of(sim, "f-series")
    before = await control(sim, "GET", "/state")
    code, _, err = await run_cli(
        "--home", str(pdata_home), "code", "--vci", url, "--ecu", "NAVI", "--yes", *FAST
    )
    assert code == 2
    assert "has no ECU NAVI" in err
    assert "HU (0x63)" in err
    assert "DME (0x12)" in err
    after = await control(sim, "GET", "/state")
    assert [e["coding"] for e in after["ecus"]] == [e["coding"] for e in before["ecus"]]


async def test_expert_coding_against_the_vo_warns_is_journaled_and_get_flags_it(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series")
    url = url_of(sim, "f-series")
    await control(sim, "POST", "/battery", {"charger": True})
    catalog = open_pdata(pdata_home).catalog
    home = ("--home", str(pdata_home))
    before = await control(sim, "GET", "/state")
    series, vo = before["series"], VehicleOrder.parse(before["vo"]["text"])
    layout = catalog.ecu(series, HU).coding
    given = vo_value(catalog, series, HU, vo, PARAM)
    assert given is not None
    other = next(v for v in parameter_values(layout, PARAM) if v != given)
    hu_before = records_of(next(e for e in before["ecus"] if e["address"] == HU))

    code, _, err = await run_cli(
        *home, "code", "set", "HU", PARAM, other, "--vci", url, "--yes", *FAST
    )
    assert code == 0, err
    assert (
        f"warning: {PARAM} = {other} contradicts the vehicle order, which gives {given}; "
        "the next VO coding will set it back"
    ) in " ".join(err.split())

    after = await control(sim, "GET", "/state")
    hu_after = records_of(next(e for e in after["ecus"] if e["address"] == HU))
    assert decode_value(layout, hu_after, PARAM) == other
    # Only that parameter changed: the other one in its byte and the other record stay.
    for name in (p.name for p in layout.parameters if p.name != PARAM):
        assert decode_value(layout, hu_after, name) == decode_value(layout, hu_before, name)
    assert hu_after[0x3001] == hu_before[0x3001]
    assert bad_checksums(catalog, after) == []
    assert [e["coding"] for e in after["ecus"] if e["address"] != HU] == [
        e["coding"] for e in before["ecus"] if e["address"] != HU
    ]

    with Journal.open(pdata_home / "journal.sqlite3") as journal:
        session = journal.session(1)
        events = journal.events(session.id)
    plan = Plan.from_bytes(session.plan_json.encode())
    assert session.state == "finished"
    assert plan.job == "expert-coding"
    (action,) = plan.actions
    assert action.ecu == HU
    assert dict(action.parameters) == {PARAM: other}
    assert f"expert coding: {PARAM} = {other}" in action.reason
    assert f"contradicts the vehicle order, which gives {given}" in action.reason
    assert [e.status for e in events if e.key == action.key][-1] is Status.SUCCESS

    code, out, err = await run_cli(*home, "code", "get", "HU", PARAM, "--vci", url, "--json")
    assert code == 0, err
    reading = json.loads(out)
    assert reading["value"] == other
    assert reading["vo_value"] == given
    assert reading["contradicts_vo"] is True
    assert reading["values"] == parameter_values(layout, PARAM)
    code, out, err = await run_cli(*home, "code", "get", "hu", PARAM, "--vci", url)
    assert code == 0, err
    assert f"HU (0x63) {PARAM} = {other}" in out
    assert "DIFFERS" in out

    # A value the parameter does not have is refused before anything is written.
    code, _, err = await run_cli(
        *home, "code", "set", "HU", PARAM, "v9", "--vci", url, "--yes", *FAST
    )
    assert code == 2
    assert "'v9'" in err
    assert ", ".join(parameter_values(layout, PARAM)) in " ".join(err.split())
    code, _, err = await run_cli(*home, "code", "get", "HU", "speed", "--vci", url)
    assert code == 2
    assert "feature_3000, variant_3000" in " ".join(err.split())
    unchanged = await control(sim, "GET", "/state")
    assert [e["coding"] for e in unchanged["ecus"]] == [e["coding"] for e in after["ecus"]]

    # VO coding sets it back, and get says it matches.
    code, _, err = await run_cli(*home, "code", "--vci", url, "--ecu", "0x63", "--yes", *FAST)
    assert code == 0, err
    code, out, err = await run_cli(*home, "code", "get", "HU", PARAM, "--vci", url, "--json")
    assert code == 0, err
    assert json.loads(out)["value"] == given
    assert json.loads(out)["contradicts_vo"] is False
