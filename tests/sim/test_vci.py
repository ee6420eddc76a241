"""The VCI's reservation: one tester at a time, leases that run out, only the owner releases."""

from __future__ import annotations

import pytest

from ecuworks.errors import ConfigError, EcuworksError
from ecuworks.sim.vci import Vci, VciBusy

VIN = "WBA8E9G50GNU12345"


def make_vci(volts: list[float] | None = None) -> Vci:
    readings = volts if volts is not None else [12.6]
    return Vci("ICOM-NEXT 04.07.1", lambda: VIN, lambda: readings[-1])


def test_info_of_a_free_vci_reports_firmware_vin_and_live_battery() -> None:
    readings = [12.6]
    vci = make_vci(readings)
    assert vci.info(now=0.0) == {
        "firmware": "ICOM-NEXT 04.07.1",
        "vin": VIN,
        "battery_volts": 12.6,
        "owner": None,
        "lease_expires_in": None,
    }
    readings.append(13.8)  # asked on every call, not cached
    assert vci.info(now=0.0)["battery_volts"] == 13.8


def test_reserve_shows_owner_and_lease_then_the_lease_runs_out() -> None:
    vci = make_vci()
    held = vci.reserve("ws-01", 30.0, now=100.0)
    assert (held.owner, held.expires_at, held.expires_in(110.0)) == ("ws-01", 130.0, 20.0)
    info = vci.info(now=110.0)
    assert (info["owner"], info["lease_expires_in"]) == ("ws-01", 20.0)
    assert vci.info(now=130.0)["owner"] is None  # expiry frees it, at the instant
    assert vci.reserve("ws-02", 5.0, now=130.0).owner == "ws-02"


def test_a_second_owner_is_refused_while_the_lease_runs() -> None:
    vci = make_vci()
    vci.reserve("ws-01", 30.0, now=0.0)
    with pytest.raises(VciBusy, match="reserved by 'ws-01'") as caught:
        vci.reserve("ws-02", 30.0, now=10.0)
    assert (caught.value.owner, caught.value.expires_in) == ("ws-01", 20.0)
    assert isinstance(caught.value, EcuworksError)
    assert vci.info(now=10.0)["owner"] == "ws-01"  # the refusal changed nothing


def test_the_same_owner_renews() -> None:
    vci = make_vci()
    vci.reserve("ws-01", 30.0, now=0.0)
    renewed = vci.reserve("ws-01", 60.0, now=25.0)
    assert renewed.expires_at == 85.0
    assert vci.info(now=80.0)["owner"] == "ws-01"


def test_only_the_owner_releases_and_releasing_a_free_vci_is_no_error() -> None:
    vci = make_vci()
    vci.reserve("ws-01", 30.0, now=0.0)
    with pytest.raises(VciBusy, match="only 'ws-01' can release"):
        vci.release("ws-02", now=1.0)
    assert vci.release("ws-01", now=1.0) is True
    assert vci.info(now=1.0)["owner"] is None
    assert vci.release("ws-01", now=2.0) is False
    vci.reserve("ws-01", 1.0, now=2.0)
    assert vci.release("ws-01", now=5.0) is False  # the lease had run out already


@pytest.mark.parametrize("owner", ["", " ", "x" * 65, "ws\n01", "ws\x00", 7])
def test_owner_names_are_validated(owner: object) -> None:
    vci = make_vci()
    with pytest.raises(ConfigError, match="printable"):
        vci.reserve(owner, 30.0, now=0.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="printable"):
        vci.release(owner, now=0.0)  # type: ignore[arg-type]


def test_owner_names_may_be_64_printable_characters_of_any_script() -> None:
    vci = make_vci()
    assert vci.reserve("Werkstatt Süd — Platz 3", 1.0, now=0.0).owner == "Werkstatt Süd — Platz 3"
    vci.release("Werkstatt Süd — Platz 3", now=0.0)
    assert vci.reserve("x" * 64, 1.0, now=0.0).owner == "x" * 64


@pytest.mark.parametrize("lease", [0.0, -1.0, float("inf"), float("nan"), 86401.0, True])
def test_lease_must_be_positive_and_bounded(lease: float) -> None:
    with pytest.raises(ConfigError, match="lease"):
        make_vci().reserve("ws-01", lease, now=0.0)
