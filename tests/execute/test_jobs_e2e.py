"""Enabling, module replacement and retrofit, end to end: real CLI processes, the simulated
f-series car, and its ``/state`` as the judge."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tests.conftest import StartSimulator
from tests.execute.test_program_e2e import FAST, control, svt_of, url_of
from tests.test_cli import run_cli

from ecuworks.backend.fsc import FscIssuer
from ecuworks.coding.expert import decode_value
from ecuworks.pdata.catalog import Catalog
from ecuworks.pdata.source import open_pdata
from ecuworks.sim.faults import SilenceFault
from ecuworks.sim.simulator import Simulator
from ecuworks.wire.vo import VehicleOrder

HU, NAVIGATION = 0x63, 0x0041
OTHER_VIN = "WBA0000000X000000"


def ecu_of(state: dict[str, Any], address: int) -> dict[str, Any]:
    return next(e for e in state["ecus"] if e["address"] == address)


def fsc_status(state: dict[str, Any], address: int) -> dict[int, str]:
    return {f["app_id"]: f["status"] for f in ecu_of(state, address).get("fsc", [])}


async def run_until(
    sim: Simulator, home: Path, args: list[str], marker: str, then: tuple[str, str, Any]
) -> tuple[int, str]:
    """Run ``ecuworks`` until ``marker`` shows on stderr, do ``then`` on the control API
    (the technician's hardware step), and let it finish."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ecuworks",
        "--home",
        str(home),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert process.stderr is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(120):
            while not any(marker in line for line in seen):
                line = (await process.stderr.readline()).decode()
                assert line, f"ended before {marker!r}: {' | '.join(seen[-8:])}"
                seen.append(line.strip())
            await control(sim, *then)
            rest = (await process.stderr.read()).decode()
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return code, "\n".join(seen) + "\n" + rest


def assert_replaced(before: dict[str, Any], old: dict[str, Any], after: dict[str, Any]) -> None:
    """The HU is a new part, programmed, holding the old one's data, codes and software."""
    new = ecu_of(after, HU)
    assert new["programming_counter"] > 0  # a new part, programmed
    assert new["mode"] == "application"
    assert new["individual_data"] == old["individual_data"]  # byte for byte
    assert fsc_status(after, HU) == fsc_status(before, HU)
    assert svt_of(after)[str(HU)] == svt_of(before)[str(HU)]


async def test_enable_writes_an_issued_code_and_reports_a_foreign_or_altered_one(
    start_simulator: StartSimulator, pdata_home: Path, tmp_path: Path
) -> None:
    sim = await start_simulator("f-series")
    url = url_of(sim, "f-series")
    vin = (await control(sim, "GET", "/state"))["vin"]
    issuer = FscIssuer.demo()

    code, _, err = await run_cli(
        "--home", str(pdata_home), "enable", "0x0050", "--vci", url, "--yes", *FAST
    )
    assert code == 0, err
    state = await control(sim, "GET", "/state")
    assert 0x0050 in {
        f["app_id"] for e in state["ecus"] for f in e.get("fsc", []) if f["status"] == "accepted"
    }

    foreign = tmp_path / "foreign.fsc"
    foreign.write_bytes(issuer.issue(OTHER_VIN, NAVIGATION, 1, issued=1_700_000_000))
    code, _, err = await run_cli(
        "--home",
        str(pdata_home),
        "enable",
        "0x0041",
        "--vci",
        url,
        "--fsc-file",
        str(foreign),
        "--yes",
        *FAST,
    )
    assert code == 4, err
    assert f"issued for VIN {OTHER_VIN}, this vehicle is {vin}" in err
    assert fsc_status(await control(sim, "GET", "/state"), HU)[NAVIGATION] == "rejected"

    altered = bytearray(issuer.issue(vin, NAVIGATION, 1, issued=1_700_000_000))
    altered[24] ^= 0x01  # one byte of the upgrade index
    (tmp_path / "altered.fsc").write_bytes(altered)
    code, _, err = await run_cli(
        "--home",
        str(pdata_home),
        "enable",
        "0x0041",
        "--vci",
        url,
        "--fsc-file",
        str(tmp_path / "altered.fsc"),
        "--yes",
        *FAST,
    )
    assert code == 4, err
    assert "signature does not verify" in err
    assert fsc_status(await control(sim, "GET", "/state"), HU)[NAVIGATION] == "invalid"


async def test_replacement_restores_individual_data_and_codes_and_reaches_the_svk(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series")
    sim.set_battery(volts=None, charger=True)
    before = await control(sim, "GET", "/state")
    old = ecu_of(before, HU)
    assert old["individual_data"]
    assert set(fsc_status(before, HU).values()) == {"accepted"}

    code, out = await run_until(
        sim,
        pdata_home,
        ["replace", "HU", "--vci", url_of(sim, "f-series"), "--yes", "--wait", "60", *FAST],
        "waiting up to",
        ("POST", "/ecus/0x63/replace", None),
    )

    assert code == 0, out
    after = await control(sim, "GET", "/state")
    assert_replaced(before, old, after)
    assert [e["name"] for e in after["ecus"] if e["mode"] != "application"] == []


async def test_retrofit_installs_programs_codes_and_enables_the_new_part(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series")
    sim.set_battery(volts=None, charger=True)
    pdata = open_pdata(pdata_home)
    catalog = pdata.catalog
    before = await control(sim, "GET", "/state")
    series = before["series"]
    retrofit = catalog.retrofit(series, "$610")
    part = dict(retrofit.install[0])
    address = int(part["address"])

    code, out = await run_until(
        sim,
        pdata_home,
        ["retrofit", "$610", "--vci", url_of(sim, "f-series"), "--yes", "--wait", "60", *FAST],
        "waiting up to",
        ("POST", "/ecus", part),
    )

    assert code == 0, out
    after = await control(sim, "GET", "/state")
    old_vo = VehicleOrder.parse(before["vo"]["text"])
    new_vo = VehicleOrder.parse(after["vo"]["text"])
    assert new_vo == old_vo.with_option("$610")
    new = ecu_of(after, address)
    assert new["mode"] == "application"
    target = catalog.target_svk(
        series, after["ilevel"]["current"], part["variant"], part["hardware"], new_vo
    )
    assert sorted(new["svk"]) == sorted(str(u) for u in target)
    assert fsc_status(after, address)[0x00B0] == "accepted"
    # The new part and every ECU whose coding the option changes are coded for the new VO.
    changed = [
        e["address"]
        for e in before["ecus"]
        if catalog.coding_values(series, e["address"], old_vo)
        != catalog.coding_values(series, e["address"], new_vo)
    ]
    assert changed, "the demo option changes some ECU's coding"
    for ecu in [address, *changed]:
        wanted = catalog.coding_values(series, ecu, new_vo)
        assert coded_values(catalog, series, ecu_of(after, ecu), wanted) == wanted

    # From now on the part belongs to the car: its order holds $610, so a later
    # identification expects it and reports it silent rather than leaving it out.
    sim.faults.add(SilenceFault(ecu=address), sim.now())
    code, out, err = await run_cli(
        "--home", str(pdata_home), "identify", "--vci", url_of(sim, "f-series"), "--json"
    )
    assert code == 0, err
    states = {e["address"]: e["state"] for e in json.loads(out)["ecus"]}
    assert states[address] == "not answering"


def coded_values(
    catalog: Catalog, series: str, ecu: dict[str, Any], wanted: dict[str, str]
) -> dict[str, str]:
    """The values the ECU's coding records in ``/state`` hold, for the ``wanted`` names."""
    info = catalog.ecu(series, ecu["address"])
    records = {int(did, 16): bytes.fromhex(data) for did, data in ecu["coding"].items()}
    return {name: decode_value(info.coding, records, name) or "-" for name in wanted}


async def test_a_replacement_killed_after_its_backup_is_finished_by_resume(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    """The tester dies while the technician swaps the part: the old part's data now lives
    only in the journal, and ``resume`` restores it to the new part byte for byte."""
    sim = await start_simulator("f-series")
    sim.set_battery(volts=None, charger=True)
    url = url_of(sim, "f-series")
    before = await control(sim, "GET", "/state")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ecuworks",
        "--home",
        str(pdata_home),
        *["replace", "HU", "--vci", url, "--yes", "--wait", "60", *FAST],
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert process.stderr is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(120):
            while not any("waiting up to" in line for line in seen):
                line = (await process.stderr.readline()).decode()
                assert line, f"ended before the hardware step: {' | '.join(seen[-8:])}"
                seen.append(line.strip())
    finally:
        process.kill()  # SIGKILL: no clean-up runs
        await process.wait()
    # The old part leaves the car with its data; a blank one is fitted.
    await control(sim, "POST", "/ecus/0x63/replace", None)
    assert (
        ecu_of(await control(sim, "GET", "/state"), HU)["individual_data"]
        != ecu_of(before, HU)["individual_data"]
    )

    code, out, err = await run_cli(
        "--home", str(pdata_home), "resume", "--vci", url, "--yes", *FAST
    )

    assert code == 0, out + err
    after = await control(sim, "GET", "/state")
    new = ecu_of(after, HU)
    assert new["mode"] == "application"
    assert new["individual_data"] == ecu_of(before, HU)["individual_data"]
    assert fsc_status(after, HU) == fsc_status(before, HU)
    assert svt_of(after)[str(HU)] == svt_of(before)[str(HU)]
    assert [e["name"] for e in after["ecus"] if e["mode"] != "application"] == []
