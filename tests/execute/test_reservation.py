"""The VCI reservation: held for the whole session, refused when another workstation has it."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest
from tests.conftest import StartSimulator
from tests.execute.test_program_e2e import FAST, HOST, control, url_of
from tests.test_cli import run_cli

from ecuworks.errors import InterfaceReserved, LinkError, Refused
from ecuworks.execute.progress import Kind, Progress
from ecuworks.execute.reservation import Reservation, hold_vci
from ecuworks.execute.runner import RunOptions
from ecuworks.execute.session import apply_plan, make_plan
from ecuworks.pdata.source import open_pdata
from ecuworks.sim.simulator import Simulator
from ecuworks.transport.vci import VciAdmin


def admin_url(sim: Simulator) -> str:
    return f"http://{HOST}:{sim.ports['control']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


async def test_the_client_reads_reserves_renews_and_releases(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("f-series")
    async with VciAdmin(admin_url(sim)) as admin:
        info = await admin.info()
        assert info.vin == sim.state_json()["vin"]
        assert info.firmware == "ICOM-NEXT 04.07.1"
        assert info.owner is None

        assert 0 < await admin.reserve("bench-1", 30.0) <= 30.0
        assert 0 < await admin.reserve("bench-1", 30.0) <= 30.0  # a renewal
        with pytest.raises(InterfaceReserved) as busy:
            await admin.reserve("bench-2", 30.0)
        assert busy.value.owner == "bench-1"
        assert busy.value.expires_in is not None
        assert "bench-1" in str(busy.value)

        assert await admin.release("bench-1") is True
        assert (await admin.info()).owner is None
        assert await admin.release("bench-1") is False


async def test_an_address_that_does_not_answer_is_a_link_error() -> None:
    async with VciAdmin(f"http://{HOST}:{free_port()}", timeout=2.0) as admin:
        with pytest.raises(LinkError, match="does not answer"):
            await admin.info()


def test_a_management_address_that_is_not_http_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match=r"http://127\.0\.0\.1:8765"):
        VciAdmin("hsfz://127.0.0.1:6801")


async def test_another_workstations_lease_refuses_hold_vci(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("f-series")
    await control(sim, "POST", "/vci/reservation", {"owner": "bench-2", "lease_s": 600})
    with pytest.raises(Refused) as refused:
        async with hold_vci(Reservation(url=admin_url(sim), owner="bench-1")):
            pytest.fail("the body ran without the reservation")
    assert refused.value.check == "reservation"
    assert "bench-2" in str(refused.value)
    assert "Nothing was written" in str(refused.value)


async def test_program_refuses_a_vci_reserved_by_another_workstation(
    start_simulator: StartSimulator, pdata_home: Path
) -> None:
    sim = await start_simulator("f-series")
    sim.set_battery(volts=None, charger=True)
    await control(sim, "POST", "/vci/reservation", {"owner": "bench-2", "lease_s": 600})
    before = await control(sim, "GET", "/state")

    code, _, err = await run_cli(
        "--home",
        str(pdata_home),
        "program",
        "--vci",
        url_of(sim, "f-series"),
        "--vci-admin",
        admin_url(sim),
        "--owner",
        "bench-1",
        "--yes",
        *FAST,
    )

    assert code == 3, err
    assert "reserved by 'bench-2'" in err
    after = await control(sim, "GET", "/state")
    counters = [(e["address"], e["programming_counter"], e["svk"]) for e in before["ecus"]]
    assert [(e["address"], e["programming_counter"], e["svk"]) for e in after["ecus"]] == counters
    assert (await control(sim, "GET", "/vci"))["owner"] == "bench-2"


async def test_the_session_holds_and_renews_the_reservation_and_releases_it(
    start_simulator: StartSimulator, pdata_home: Path, tmp_path: Path
) -> None:
    sim = await start_simulator("f-series")
    sim.set_battery(volts=None, charger=True)
    pdata = open_pdata(pdata_home)
    plan = (await make_plan(url_of(sim, "f-series"), pdata)).plan
    holders: list[str | None] = []

    def progress(event: Progress) -> None:
        if event.kind in (Kind.STEP, Kind.ECU):
            held = sim.vci.holder(time.monotonic())
            holders.append(held.owner if held else None)

    lease = Reservation(url=admin_url(sim), owner="bench-1", lease_s=0.5)
    options = RunOptions(tester_present_s=0.01, voltage_poll_s=0.05, reservation=lease)
    started = time.monotonic()
    report = await apply_plan(
        url_of(sim, "f-series"), plan, pdata, tmp_path, options=options, progress=progress
    )

    assert report.outcome == "done", report.mismatches
    assert time.monotonic() - started > lease.lease_s  # so renewals were needed
    assert holders
    assert set(holders) == {"bench-1"}
    assert (await control(sim, "GET", "/vci"))["owner"] is None
    async with httpx.AsyncClient() as client:  # free for the next workstation
        answer = await client.post(
            f"{admin_url(sim)}/vci/reservation", json={"owner": "bench-2", "lease_s": 5}
        )
    assert answer.status_code == 200
