"""The vehicle's runtime state: /state JSON, round trips, blank parts, atomic save/load."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecuworks.errors import ConfigError
from ecuworks.profiles import load_profile
from ecuworks.sim.state import MODES, Battery, EcuState, RegionState, VehicleState
from ecuworks.wire.sgbm import ProcessClass, SgbmId


@pytest.fixture(scope="module")
def f_series() -> Any:
    return load_profile("f-series")


def fresh(profile: Any) -> VehicleState:
    return VehicleState.from_profile(profile)


# -- the /state shape ------------------------------------------------------------------------


def test_state_json_has_designs_keys(f_series: Any) -> None:
    state = fresh(f_series).to_json()
    assert {"vin", "series", "vo", "ilevel", "battery", "ecus"} <= state.keys()
    assert state["vin"] == f_series.vin
    assert state["series"] == "F030"
    assert state["vo"]["type_key"] == "8E9C"
    assert "$609" in state["vo"]["options"]
    assert state["ilevel"] == {
        "current": f_series.ilevel_current,
        "last": f_series.ilevel_last,
        "shipment": f_series.ilevel_shipment,
    }
    assert state["battery"] == {"volts": 12.6, "charger": False}
    assert state["energy_mode"] == "normal"
    gateway = next(e for e in state["ecus"] if e["address"] == 0x10)
    designs = {
        "address",
        "name",
        "bus",
        "svk",
        "mode",
        "programming_counter",
        "flash_regions",
        "security",
        "coding",
        "dtcs",
    }
    assert designs <= gateway.keys()
    assert gateway["name"] == "ZGW"
    assert gateway["mode"] == "application"
    assert gateway["svk"][0].startswith("HWEL-")
    assert gateway["svk"][1].startswith("BTLD-")
    assert gateway["svk"][-1].startswith("CAFD-")
    assert gateway["flash_regions"][0] == {
        "class": "BTLD",
        "address": 0,
        "size": gateway["flash_regions"][0]["size"],
    }
    assert gateway["security"] == {
        "algorithm": "hmac-sha256",
        "secret": "b38bf6aa96b1ab174ec79c8b44b08134",
    }
    assert gateway["coding"]["3000"] == "78e0dab2ee26"
    assert all(r["valid"] for r in gateway["regions"])
    assert gateway["session"] == 1
    assert [e["address"] for e in state["ecus"]] == sorted(e.address for e in f_series.ecus)


def test_state_json_survives_json_and_comes_back_identical(f_series: Any) -> None:
    vehicle = fresh(f_series)
    text = json.dumps(vehicle.to_json())
    again = VehicleState.from_json(json.loads(text))
    assert again == vehicle
    assert json.dumps(again.to_json()) == text


def test_dtcs_are_hex_codes_with_their_status() -> None:
    ecu = small_ecu()
    ecu.dtcs = [(0x123456, 0x09), (0xA1B2C3, 0x2F)]
    data = ecu.to_json()
    assert data["dtcs"] == ["123456", "A1B2C3"]
    assert data["dtc_status"] == {"123456": 9, "A1B2C3": 47}
    assert EcuState.from_json(data).dtcs == ecu.dtcs


# -- SVK, blank parts, retrofit ----------------------------------------------------------------


def small_ecu() -> EcuState:
    return EcuState(
        address=0x12,
        name="DME",
        variant="DME_B48",
        bus="pt-can",
        hardware="HWEL-00001210-001.000.000",
        regions=[
            RegionState(
                process_class="BTLD",
                address=0,
                size=0x1000,
                unit="BTLD-00001261-001.000.000",
                valid=True,
            ),
            RegionState(
                process_class="SWFL",
                address=0x10000,
                size=0x4000,
                unit="SWFL-00001281-001.000.000",
                valid=True,
            ),
        ],
        cafd=["CAFD-00001251-001.000.000"],
        programming_counter=5,
        security_secret=b"\x01\x02",
        coding={0x3000: b"\x01\x02"},
        individual_data={0x4000: b"\x09\x08\x07"},
        dtcs=[(0x123456, 0x09)],
    )


def test_svk_leaves_out_erased_regions() -> None:
    ecu = small_ecu()
    assert ecu.svk == [
        "HWEL-00001210-001.000.000",
        "BTLD-00001261-001.000.000",
        "SWFL-00001281-001.000.000",
        "CAFD-00001251-001.000.000",
    ]
    ecu.regions[1].erase()
    assert ecu.svk == [
        "HWEL-00001210-001.000.000",
        "BTLD-00001261-001.000.000",
        "CAFD-00001251-001.000.000",
    ]
    assert [str(u) for u in ecu.svk_ids()] == ecu.svk
    # A region written with an image that did not verify still names its unit.
    ecu.regions[1].unit = "SWFL-00001281-002.000.000"
    assert "SWFL-00001281-002.000.000" in ecu.svk
    assert not ecu.all_regions_valid


def test_blank_part_has_its_bootloader_and_nothing_else() -> None:
    blank = small_ecu().blank()
    assert blank.mode == "bootloader"
    assert blank.regions[0].unit == "BTLD-00001261-001.000.000"
    assert blank.regions[0].valid
    assert blank.regions[1].unit is None
    assert not blank.regions[1].valid
    assert blank.cafd == []
    assert blank.programming_counter == 0
    assert not blank.application_valid
    assert blank.dtcs == []
    # The DIDs exist, zero-filled, so that a tester can write them after flashing.
    assert blank.coding == {0x3000: b"\x00\x00"}
    assert blank.individual_data == {0x4000: b"\x00\x00\x00"}
    assert blank.svk == ["HWEL-00001210-001.000.000", "BTLD-00001261-001.000.000"]


def test_replace_with_blank_and_install(f_series: Any) -> None:
    vehicle = fresh(f_series)
    dme = vehicle.replace_with_blank(0x12)
    assert vehicle.ecus[0x12] is dme
    assert dme.mode == "bootloader"
    with pytest.raises(ConfigError, match="no ECU at 0x77"):
        vehicle.replace_with_blank(0x77)

    profile = f_series.ecu(0x12)
    with pytest.raises(ConfigError, match="already there"):
        vehicle.install(profile)
    del vehicle.ecus[0x12]
    installed = vehicle.install(profile)
    assert installed.mode == "application"
    assert installed.svk == list(profile.svk())
    del vehicle.ecus[0x12]
    assert vehicle.install(profile, blank=True).mode == "bootloader"


def test_gateway_is_found_by_its_address(f_series: Any) -> None:
    vehicle = fresh(f_series)
    assert vehicle.gateway is not None
    assert vehicle.gateway.name == "ZGW"


# -- save and load ---------------------------------------------------------------------------------


def test_save_then_load_gives_the_same_state(f_series: Any, tmp_path: Path) -> None:
    vehicle = fresh(f_series)
    vehicle.battery.volts = 13.8
    vehicle.ecus[0x12].regions[1].erase()
    path = tmp_path / "car.json"
    vehicle.save(path)
    assert VehicleState.load(path) == vehicle
    assert [p.name for p in tmp_path.iterdir()] == ["car.json"]
    vehicle.save(path)  # overwrite
    assert VehicleState.load(path) == vehicle


def test_failed_save_keeps_the_old_file(
    f_series: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vehicle = fresh(f_series)
    path = tmp_path / "car.json"
    vehicle.save(path)
    before = path.read_bytes()

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    vehicle.battery.volts = 9.0
    with pytest.raises(ConfigError, match=r"car\.json"):
        vehicle.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["car.json"]


def test_save_into_a_missing_directory_says_where(f_series: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="directory exists"):
        fresh(f_series).save(tmp_path / "nowhere" / "car.json")


def test_corrupt_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "car.json"
    path.write_text('{"vin": "WBA', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        VehicleState.load(path)
    message = str(caught.value)
    assert str(path) in message
    assert "corrupt" in message
    assert "delete it" in message


def test_missing_field_is_named(f_series: Any, tmp_path: Path) -> None:
    data = fresh(f_series).to_json()
    del data["ecus"][0]["regions"]
    path = tmp_path / "car.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="regions") as caught:
        VehicleState.load(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        pytest.param(("mode",), "asleep", id="mode"),
        pytest.param(("hardware",), "HWEL-nothex-1", id="sgbm"),
        pytest.param(("programming_counter",), "3", id="counter type"),
        pytest.param(("security", "secret"), "zz", id="secret hex"),
    ],
)
def test_malformed_ecu_fields_are_config_errors(
    f_series: Any, where: tuple[str, ...], value: object
) -> None:
    data = fresh(f_series).to_json()
    ecu = data["ecus"][0]
    label = f"ECU 0x{ecu['address']:02X} ({ecu['name']})"
    target = ecu
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    with pytest.raises(ConfigError, match=re.escape(label)):
        VehicleState.from_json(data)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        VehicleState.load(tmp_path / "absent.json")


def test_non_object_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "car.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError, match="does not hold an object"):
        VehicleState.load(path)


# -- property: any state round-trips exactly -----------------------------------------------------

_names = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789", min_size=1, max_size=12)
_floats = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


def _sgbm(classes: list[ProcessClass]) -> st.SearchStrategy[str]:
    return st.builds(
        SgbmId,
        process_class=st.sampled_from(classes),
        unit_id=st.integers(0, 0xFFFF_FFFF),
        main=st.integers(0, 255),
        sub=st.integers(0, 255),
        patch=st.integers(0, 255),
    ).map(str)


_flash_classes = [ProcessClass.BTLD, ProcessClass.SWFL, ProcessClass.SWFF, ProcessClass.IBAD]
_regions = st.builds(
    RegionState,
    process_class=st.sampled_from([c.name for c in _flash_classes]),
    address=st.integers(0, 0xFFFF_FFFF),
    size=st.integers(1, 1 << 30),
    unit=st.none() | _sgbm(_flash_classes),
    valid=st.booleans(),
)
_records = st.dictionaries(st.integers(0, 0xFFFF), st.binary(min_size=1, max_size=8), max_size=4)
_ecus = st.builds(
    EcuState,
    address=st.integers(0, 0xFF),
    name=_names,
    variant=_names,
    bus=_names,
    hardware=_sgbm([ProcessClass.HWEL]),
    regions=st.lists(_regions, max_size=3),
    cafd=st.lists(_sgbm([ProcessClass.CAFD]), max_size=2),
    mode=st.sampled_from(MODES),
    session=st.sampled_from([0x01, 0x02, 0x03, 0x41]),
    programming_counter=st.integers(0, 0xFFFF),
    programming_counter_max=st.integers(1, 0xFFFF),
    application_valid=st.booleans(),
    security_algorithm=_names,
    security_secret=st.binary(max_size=32),
    coding=_records,
    individual_data=_records,
    dtcs=st.dictionaries(st.integers(0, 0xFF_FFFF), st.integers(0, 0xFF), max_size=4).map(
        lambda d: list(d.items())
    ),
    max_block_length=st.integers(3, 0xFFFF),
    erase_ms_per_kib=_floats,
    write_kib_s=_floats,
    boot_ms=_floats,
    isotp_stmin_ms=_floats,
    isotp_block_size=st.integers(0, 255),
)
_vehicles = st.builds(
    VehicleState,
    name=_names,
    series=st.just("F030"),
    vin=st.text("ABCDEFGHJKLMNPRSTUVWXYZ0123456789", min_size=17, max_size=17),
    vo=st.sampled_from(["8E9C#0715*A96%LCSW&$1CA$609", "5A31#0724*A96%LCSW&-E11A+HW01"]),
    ilevel_current=st.sampled_from(["F030-24-03-550", "F030-25-01-100"]),
    ilevel_last=st.just("F030-23-11-530"),
    ilevel_shipment=st.just("F030-15-07-520"),
    battery=st.builds(Battery, volts=_floats, charger=st.booleans()),
    energy_mode=st.sampled_from(["normal", "production", "transport", "flash"]),
    gateway_address=st.integers(0, 0xFF),
    ecus=st.lists(_ecus, max_size=3, unique_by=lambda e: e.address).map(
        lambda ecus: {e.address: e for e in ecus}
    ),
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(_vehicles)
def test_any_state_round_trips_exactly(vehicle: VehicleState) -> None:
    data = json.loads(json.dumps(vehicle.to_json()))
    again = VehicleState.from_json(data)
    assert again == vehicle
    assert again.to_json() == vehicle.to_json()


def test_terminal_voltage_is_a_measurement_not_state(f_series: Any) -> None:
    vehicle = fresh(f_series)
    assert vehicle.battery.supply_volts == 12.6
    vehicle.battery.terminal_volts = 11.9
    assert vehicle.battery.supply_volts == 11.9
    assert vehicle.to_json()["battery"] == {"volts": 12.6, "charger": False}
    assert VehicleState.from_json(vehicle.to_json()) == vehicle
