"""The interface manager against a real simulated VCI: known interfaces, status,
reservations decided by the VCI, expiry, and DoIP discovery by unicast."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import StartSimulator
from tests.execute.test_program_e2e import HOST, control, url_of
from tests.execute.test_reservation import admin_url, free_port

from ecuworks.errors import ConfigError, InterfaceReserved, LinkError
from ecuworks.platform import interfaces as manager
from ecuworks.platform.db import Database, default_url, open_database
from ecuworks.platform.interfaces import KnownInterface
from ecuworks.sim.simulator import Simulator


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(default_url(tmp_path))
    yield database
    database.close()


def known(sim: Simulator, vehicle: str = "f-series", name: str = "bench") -> KnownInterface:
    return KnownInterface(id=1, name=name, vci_url=url_of(sim, vehicle), admin_url=admin_url(sim))


def test_interfaces_are_added_listed_and_removed(db: Database) -> None:
    added = manager.add_interface(db, " icom-1 ", "hsfz://127.0.0.1", "http://127.0.0.1:8765/")
    assert (added.name, added.vci_url, added.admin_url) == (
        "icom-1",
        "hsfz://127.0.0.1:6801",
        "http://127.0.0.1:8765",
    )
    manager.add_interface(db, "doip-bay", "doip://10.0.0.5", None)
    assert [i.name for i in manager.list_interfaces(db)] == ["doip-bay", "icom-1"]
    assert manager.get_interface(db, added.id) == added

    assert manager.remove_interface(db, added.id) == added
    assert manager.remove_interface(db, added.id) is None
    assert [i.name for i in manager.list_interfaces(db)] == ["doip-bay"]


@pytest.mark.parametrize(
    ("name", "vci_url", "admin", "message"),
    [
        ("", "hsfz://127.0.0.1", None, "1 to 64 printable"),
        ("x", "ftp://127.0.0.1", None, "known schemes"),
        ("x", "hsfz://127.0.0.1", "hsfz://127.0.0.1:8765", r"http://127\.0\.0\.1:8765"),
    ],
)
def test_an_unusable_interface_is_refused_with_an_example(
    db: Database, name: str, vci_url: str, admin: str | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        manager.add_interface(db, name, vci_url, admin)
    assert manager.list_interfaces(db) == []


def test_the_configured_interfaces_are_added_once(db: Database) -> None:
    configured = [("icom-1", "hsfz://127.0.0.1:6801", "http://127.0.0.1:8765")]
    assert [i.name for i in manager.ensure_configured(db, configured)] == ["icom-1"]
    assert manager.ensure_configured(db, configured) == []
    with pytest.raises(ConfigError, match="exists already"):
        manager.add_interface(db, "icom-1", "hsfz://127.0.0.1", None)
    assert len(manager.list_interfaces(db)) == 1


async def test_status_shows_what_the_vci_reports(start_simulator: StartSimulator) -> None:
    sim = await start_simulator("f-series")
    vci = await control(sim, "GET", "/vci")
    interface = known(sim)

    free = await manager.status(interface)
    assert (free.state, free.owner, free.describe()) == ("free", None, "free")
    assert (free.firmware, free.vin) == ("ICOM-NEXT 04.07.1", sim.state_json()["vin"])
    assert free.battery_volts == pytest.approx(vci["battery_volts"])

    await manager.reserve(interface, "ada@bench-1", lease_s=600)
    held = await manager.status(interface)
    assert (held.state, held.owner) == ("reserved", "ada@bench-1")
    assert held.describe() == "reserved by ada@bench-1, 10 min left"


async def test_a_vci_that_does_not_answer_is_offline_not_an_error() -> None:
    interface = KnownInterface(
        id=1, name="gone", vci_url="hsfz://127.0.0.1:6801", admin_url=f"http://{HOST}:{free_port()}"
    )
    offline = await manager.status(interface)
    assert offline.state == "offline"
    assert "does not answer" in offline.reason
    unmanaged = await manager.status(
        KnownInterface(id=2, name="bare", vci_url="hsfz://127.0.0.1:6801", admin_url=None)
    )
    assert unmanaged.describe() == "unmanaged: no management address"
    with pytest.raises(ConfigError, match="no management address"):
        await manager.reserve(unmanaged.interface, "ada@bench-1")
    with pytest.raises(LinkError, match="does not answer"):
        await manager.reserve(interface, "ada@bench-1")


async def test_of_two_reservations_at_once_exactly_one_wins(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("f-series")
    interface = known(sim)
    owners = ("ada@bench-1", "bob@bench-2")
    results = await asyncio.gather(
        *(manager.reserve(interface, owner) for owner in owners), return_exceptions=True
    )
    won = [o for o, r in zip(owners, results, strict=True) if isinstance(r, float)]
    refused = [r for r in results if isinstance(r, InterfaceReserved)]
    assert len(won) == 1
    assert len(refused) == 1
    assert refused[0].owner == won[0]
    assert f"bench is reserved by {won[0]}, 15 min left" in str(refused[0])
    assert (await manager.status(interface)).owner == won[0]

    loser = next(o for o in owners if o not in won)
    with pytest.raises(InterfaceReserved, match=won[0]):
        await manager.release(interface, loser)
    assert await manager.release(interface, won[0]) is True
    assert await manager.release(interface, won[0]) is False
    assert 0 < await manager.reserve(interface, loser) <= 900


async def test_an_expired_lease_is_taken_over(start_simulator: StartSimulator) -> None:
    sim = await start_simulator("f-series")
    interface = known(sim)
    await manager.reserve(interface, "ada@bench-1", lease_s=0.5)
    with pytest.raises(InterfaceReserved, match="ada@bench-1"):
        await manager.reserve(interface, "bob@bench-2")

    deadline = time.monotonic() + 10
    while True:
        try:
            await manager.reserve(interface, "bob@bench-2")
            break
        except InterfaceReserved:
            assert time.monotonic() < deadline, "the expired lease was never freed"
            await asyncio.sleep(0.05)
    assert (await manager.status(interface)).owner == "bob@bench-2"
    with pytest.raises(InterfaceReserved, match="bob@bench-2"):
        await manager.release(interface, "ada@bench-1")


async def test_discovery_by_unicast_finds_the_simulated_vehicle(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator("g-series")
    silent = free_port()
    found = await manager.discover([(HOST, sim.ports["doip"]), (HOST, silent)], timeout=0.5)
    assert [v.vin for v in found.found] == [sim.state_json()["vin"]]
    assert found.found[0].url == url_of(sim, "g-series")
    assert [where for where, _ in found.unanswered] == [f"{HOST}:{silent}"]


async def test_discovery_never_broadcasts() -> None:
    found = await manager.discover([("255.255.255.255", 13400)])
    assert found.found == ()
    [(where, why)] = found.unanswered
    assert where == "255.255.255.255:13400"
    assert "broadcast" in why
