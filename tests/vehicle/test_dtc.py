"""Diagnosis: the fault memory of every ECU read, described from P-Data, and cleared.

Decoding is checked on literal answers (ISO 14229-1 reportDTCByStatusMask); the rest end to
end against the simulated F-series car over HSFZ, with the demo P-Data, checking the
simulator's own ``/state``; the command line runs as a child process.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import StartSimulator
from tests.execute.test_reservation import admin_url
from tests.vehicle.test_identify import control, url_of

from ecuworks.errors import NegativeResponse, UnexpectedResponse
from ecuworks.execute.journal import Journal, Status
from ecuworks.execute.session import identify_vehicle
from ecuworks.pdata.source import open_pdata
from ecuworks.plan.model import Plan
from ecuworks.sim.simulator import Simulator
from ecuworks.transport.url import open_link
from ecuworks.vehicle.dtc import (
    NO_DESCRIPTION,
    EcuFaults,
    FaultEntry,
    FaultMemory,
    FaultState,
    clear_fault_memory,
    decode_fault_memory,
    read_fault_memory,
    read_vehicle_fault_memory,
    readable,
    status_flags,
)

DME, DSC, KOMBI, ACSM, HU = 0x12, 0x29, 0x60, 0x01, 0x63
TEXTS = {
    0x5E2012: "DSC: supply voltage low during start",
    0x801C20: "KOMBI: outside temperature sensor, signal missing",
    0x930B23: "ACSM: passenger seat occupancy detection, calibration missing",
    0xB7F33F: "HU: navigation map data outdated",
}
# What each of three ECUs gets injected; 0x123456 has no text in the demo P-Data.
INJECTED = {DSC: [0x5E2012], KOMBI: [0x801C20], ACSM: [0x930B23, 0x123456]}


# --- decoding, literal vectors ----------------------------------------------------------


def test_a_report_decodes_into_described_entries() -> None:
    answer = bytes.fromhex("59 02 FF 5E2012 2F 123456 09")
    ecu = decode_fault_memory(DSC, answer, name="DSC", describe=TEXTS.get)
    assert ecu == EcuFaults(
        address=DSC,
        name="DSC",
        state=FaultState.ANSWERING,
        dtcs=(
            FaultEntry(code=0x5E2012, status=0x2F, text=TEXTS[0x5E2012]),
            FaultEntry(code=0x123456, status=0x09, text=NO_DESCRIPTION),
        ),
    )
    assert ecu.to_json() == {
        "address": DSC,
        "name": "DSC",
        "state": "answering",
        "dtcs": [
            {"code": "0x5E2012", "status": 47, "text": TEXTS[0x5E2012]},
            {"code": "0x123456", "status": 9, "text": NO_DESCRIPTION},
        ],
    }


@pytest.mark.parametrize(
    ("answer", "codes"),
    [
        ("59 02 FF", []),  # a clean memory
        ("59 02 09", []),  # availability mask of an ECU that supports fewer status bits
        ("59 02 FF 000000 00 801C20 09", [0x801C20]),  # zero padding some ECUs send
        ("59 02 FF 801C20 09 930B23 08 B7F33F 01", [0x801C20, 0x930B23, 0xB7F33F]),
    ],
)
def test_report_vectors(answer: str, codes: list[int]) -> None:
    ecu = decode_fault_memory(KOMBI, bytes.fromhex(answer))
    assert ecu.state is FaultState.ANSWERING
    assert [entry.code for entry in ecu.dtcs] == codes


@pytest.mark.parametrize(
    "answer",
    [
        "59 02 FF 5E2012",  # a record without its status byte
        "59 02 FF 5E20122F 80",
        "59 02",  # no availability mask
        "59 03 FF 5E2012 2F",  # another report type
    ],
)
def test_a_malformed_report_is_unreadable_not_clean(answer: str) -> None:
    ecu = decode_fault_memory(KOMBI, bytes.fromhex(answer))
    assert (ecu.state, ecu.dtcs) == (FaultState.UNREADABLE, ())
    assert ecu.problem is not None
    assert "does not decode" in ecu.problem


def test_refusal_silence_and_other_errors() -> None:
    bootloader = decode_fault_memory(
        DME, NegativeResponse(0x19, 0x11, "serviceNotSupported", target=DME)
    )
    assert bootloader.state is FaultState.UNREADABLE
    assert bootloader.problem is not None
    assert "NRC 0x11" in bootloader.problem
    assert "bootloader" in bootloader.problem
    busy = decode_fault_memory(DME, NegativeResponse(0x19, 0x22, "conditionsNotCorrect"))
    assert busy.problem is not None
    assert "NRC 0x22" in busy.problem
    assert "bootloader" not in busy.problem
    pending = decode_fault_memory(DME, UnexpectedResponse("answered 'response pending' 1000 times"))
    assert pending.state is FaultState.UNREADABLE
    silent = decode_fault_memory(DME, None, name="DME")
    assert (silent.state, silent.to_json()["state"]) == (FaultState.NOT_ANSWERING, "not answering")


def test_status_flags_name_the_iso_bits() -> None:
    assert status_flags(0x09) == ["test failed", "confirmed"]
    assert status_flags(0x2F) == [
        "test failed",
        "failed this cycle",
        "pending",
        "confirmed",
        "failed since clear",
    ]
    assert status_flags(0x80) == ["warning lamp"]
    assert status_flags(0) == []


def test_the_json_has_a_schema_version() -> None:
    memory = FaultMemory(
        vin="WBA8E9C50GK123456",
        ecus=(decode_fault_memory(HU, bytes.fromhex("5902FF B7F33F 09"), describe=TEXTS.get),),
    )
    assert memory.entries == 1
    document = memory.to_json()
    assert (document["schema"], document["vin"]) == (1, "WBA8E9C50GK123456")
    assert document["ecus"][0]["dtcs"] == [
        {"code": "0xB7F33F", "status": 9, "text": TEXTS[0xB7F33F]}
    ]
    assert json.loads(json.dumps(document)) == document


# --- against the simulator ------------------------------------------------------------


async def read_vehicle(sim: Simulator, home: Path, timeout: float = 0.5) -> FaultMemory:
    pdata = open_pdata(home)
    async with open_link(url_of(sim)) as link:
        ident = await identify_vehicle(link, pdata, timeout=timeout)
        return await read_vehicle_fault_memory(link, ident, pdata.catalog, timeout=timeout)


async def stored(sim: Simulator) -> dict[int, list[str]]:
    """Every ECU's DTCs as the simulator's /state shows them."""
    state = await control(sim, "GET", "/state")
    return {e["address"]: e["dtcs"] for e in state["ecus"]}


async def inject(sim: Simulator) -> None:
    for address, codes in INJECTED.items():
        await control(sim, "POST", f"/ecus/{address}/dtcs", {"dtcs": codes, "status": 0x2F})


def entries(memory: FaultMemory) -> dict[int, list[tuple[int, int, str]]]:
    return {e.address: [(d.code, d.status, d.text) for d in e.dtcs] for e in memory.ecus if e.dtcs}


async def test_faults_injected_into_three_ecus_are_read_with_texts_and_cleared(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    # The car left the factory with faults of its own: they are read and described too.
    factory = await read_vehicle(sim, pdata_home)
    assert factory.vin == sim.state.vin
    assert {e.address for e in factory.ecus} == set(sim.state.ecus)
    assert {e.state for e in factory.ecus} == {FaultState.ANSWERING}
    assert entries(factory)[HU] == [(0xB7F33F, 0x09, TEXTS[0xB7F33F])]
    assert factory.ecu(HU).name == "HU"
    assert factory.entries == sum(len(codes) for codes in (await stored(sim)).values()) > 0

    async with open_link(url_of(sim)) as link:
        cleared = await clear_fault_memory(link, readable(factory), timeout=0.5)
    assert cleared == dict.fromkeys(sim.state.ecus, True)
    assert set(map(len, (await stored(sim)).values())) == {0}

    await inject(sim)
    memory = await read_vehicle(sim, pdata_home)
    assert entries(memory) == {
        DSC: [(0x5E2012, 0x2F, TEXTS[0x5E2012])],
        KOMBI: [(0x801C20, 0x2F, TEXTS[0x801C20])],
        ACSM: [(0x930B23, 0x2F, TEXTS[0x930B23]), (0x123456, 0x2F, NO_DESCRIPTION)],
    }
    assert [memory.ecu(a).name for a in INJECTED] == ["DSC", "KOMBI", "ACSM"]

    async with open_link(url_of(sim)) as link:
        assert await clear_fault_memory(link, INJECTED, timeout=0.5) == dict.fromkeys(
            INJECTED, True
        )
    state = await stored(sim)
    assert [state[a] for a in INJECTED] == [[], [], []]
    assert (await read_vehicle(sim, pdata_home)).entries == 0


async def test_every_ecu_is_asked_at_once(start_simulator: StartSimulator) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    silent = [DSC, KOMBI, ACSM]
    for address in silent:
        await control(sim, "POST", "/faults", {"kind": "silence", "ecu": address})
    async with open_link(url_of(sim)) as link:
        started = time.monotonic()
        memory = await read_fault_memory(link, sim.state.ecus, timeout=1.0)
        took = time.monotonic() - started
    # One after another, three silent ECUs would cost 3 s.
    assert took < 2.5
    not_answering = {e.address for e in memory.ecus if e.state is FaultState.NOT_ANSWERING}
    assert not_answering == set(silent)
    assert len(memory.ecus) == len(sim.state.ecus)
    assert memory.ecu(HU).dtcs[0].code == 0xB7F33F
    async with open_link(url_of(sim)) as link:
        cleared = await clear_fault_memory(link, [HU, *silent], timeout=0.3)
    assert cleared[HU] is True
    assert all(cleared[a] == "did not answer the clear request" for a in silent)
    assert (await stored(sim))[DSC] == ["480A12", "5E2012"]


async def test_an_ecu_in_its_bootloader_is_unreadable_and_not_cleared(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    await control(sim, "POST", f"/ecus/{DME}/replace")
    memory = await read_vehicle(sim, pdata_home)
    dme = memory.ecu(DME)
    assert (dme.name, dme.state, dme.dtcs) == ("DME", FaultState.UNREADABLE, ())
    assert dme.problem is not None
    assert "bootloader" in dme.problem
    assert DME not in readable(memory)
    async with open_link(url_of(sim)) as link:
        cleared = await clear_fault_memory(link, [DME], timeout=0.5)
    assert isinstance(cleared[DME], str)
    assert "NRC 0x11" in cleared[DME]


async def test_an_ecu_silent_at_identification_is_listed_not_answering(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    await control(sim, "POST", "/faults", {"kind": "silence", "ecu": DSC})
    memory = await read_vehicle(sim, pdata_home)
    dsc = memory.ecu(DSC)
    assert (dsc.name, dsc.state) == ("DSC", FaultState.NOT_ANSWERING)
    assert DSC not in readable(memory)
    assert memory.ecu(KOMBI).state is FaultState.ANSWERING


# --- the command line ------------------------------------------------------------------


async def run_cli(*args: str) -> tuple[int, str, str]:
    """tests.test_cli.run_cli with no terminal on stdin, as in a script or CI."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ecuworks",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def cli_entries(document: dict[str, Any]) -> dict[int, list[tuple[str, int, str]]]:
    return {
        e["address"]: [(d["code"], d["status"], d["text"]) for d in e["dtcs"]]
        for e in document["ecus"]
        if e["dtcs"]
    }


async def test_cli_lists_the_injected_faults_with_their_texts(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    for address in sim.state.ecus:
        sim.state.ecus[address].dtcs.clear()  # the factory's faults are another test's
    await inject(sim)
    dtc = ("--home", str(pdata_home), "diag", "dtc", "--vci", url_of(sim), "--timeout", "0.5")
    code, out, err = await run_cli(*dtc, "--json")
    assert code == 0, err
    document = json.loads(out)
    assert (document["schema"], document["vin"]) == (1, sim.state.vin)
    assert cli_entries(document) == {
        DSC: [("0x5E2012", 0x2F, TEXTS[0x5E2012])],
        KOMBI: [("0x801C20", 0x2F, TEXTS[0x801C20])],
        ACSM: [("0x930B23", 0x2F, TEXTS[0x930B23]), ("0x123456", 0x2F, NO_DESCRIPTION)],
    }
    by_address = {e["address"]: e for e in document["ecus"]}
    assert (by_address[DSC]["name"], by_address[DSC]["state"]) == ("DSC", "answering")

    code, out, err = await run_cli(*dtc)
    assert code == 0, err
    assert "0x5E2012" in out
    assert TEXTS[0x801C20] in out
    assert "0x2F test failed" in out
    assert "4 fault memory entries in 3 of" in out


async def test_cli_clears_only_when_confirmed(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series", time_scale=1000)
    await inject(sim)
    before = await stored(sim)
    dtc = ("--home", str(pdata_home), "diag", "dtc", "--vci", url_of(sim), "--timeout", "0.5")

    code, out, err = await run_cli(*dtc, "--clear")
    assert code == 2, err
    assert "pass --yes" in err
    assert "0x930B23" in out  # it showed what it would clear
    assert await stored(sim) == before

    # Another workstation holds the VCI: nothing is cleared.
    await control(sim, "POST", "/vci/reservation", {"owner": "bench-2", "lease_s": 600})
    admin = ("--vci-admin", admin_url(sim), "--owner", "bench-1")
    code, out, err = await run_cli(*dtc, *admin, "--clear", "--yes")
    assert code == 3, err
    assert "reserved by 'bench-2'" in err
    assert await stored(sim) == before
    await control(sim, "DELETE", "/vci/reservation", {"owner": "bench-2"})

    code, out, err = await run_cli(*dtc, *admin, "--clear", "--yes", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert cli_entries(document) == {}
    assert document["cleared"] == {str(a): True for a in sorted(sim.state.ecus)}
    assert {e["address"] for e in document["before"] if e["dtcs"]} >= set(INJECTED)
    assert set(map(len, (await stored(sim)).values())) == {0}
    with Journal.open(pdata_home / "journal.sqlite3") as journal:
        session = journal.session(document["session"])
        assert (session.vin, session.state) == (sim.state.vin, "finished")
        assert Plan.from_bytes(session.plan_json.encode(), "journal").job == "diag"
        assert journal.last(session.id, "step/clear-fault-memory").status == Status.SUCCESS
    assert (await control(sim, "GET", "/vci"))["owner"] is None  # released afterwards

    code, out, err = await run_cli(*dtc, "--clear", "--yes")
    assert code == 0, err
    assert "no fault memory entries" in out
    assert "nothing to clear" in out


async def test_cli_exits_5_when_the_vehicle_is_not_reachable(pdata_home: Path) -> None:
    code, _, err = await run_cli(
        "--home", str(pdata_home), "diag", "dtc", "--vci", "hsfz://127.0.0.1:1", "--timeout", "0.5"
    )
    assert code == 5, err
    assert "hsfz://127.0.0.1:1" in err
