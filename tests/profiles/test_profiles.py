"""Vehicle profiles: the shipped cars, the TOML loader's checks, plugins."""

from __future__ import annotations

import dataclasses
import re
import sys
import types
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest

from ecuworks.errors import ConfigError, ParseError
from ecuworks.profiles import (
    ENTRY_POINT_GROUP,
    EcuProfile,
    RegionProfile,
    VehicleProfile,
    available_profiles,
    load_profile,
    parse_profile,
    scaled_size,
)
from ecuworks.wire.ilevel import ILevel
from ecuworks.wire.sgbm import ProcessClass, SgbmId, encode_svk, parse_svk
from ecuworks.wire.vo import VehicleOrder

MiB = 1 << 20
SHIPPED = ["e-series", "f-series", "g-series"]

MINI = """\
name = "mini"
series = "F030"
vin = "WBA8E9C50GK123456"
vo = "8E9C#0715*A96%LCSW&$609"
transports = ["hsfz"]
size_scale = 1.0

[ilevel]
current = "F030-24-03-550"
last = "F030-23-11-530"
shipment = "F030-15-07-520"

[[buses]]
name = "enet"
kind = "ethernet"
bitrate = 100_000_000

[[buses]]
name = "pt-can"
kind = "can"
bitrate = 500_000

[[ecus]]
address = 0x10
name = "ZGW"
variant = "ZGW_MINI"
bus = "enet"
hardware = "HWEL-00001010-001.000.000"
max_block_length = 0x8002
erase_ms_per_kib = 8
write_kib_s = 400
boot_ms = 1200
security_secret = "00112233445566778899aabbccddeeff"

[[ecus.regions]]
class = "BTLD"
address = 0x0
size = "64 KiB"
unit = "BTLD-00001060-001.000.000"

[[ecus]]
address = 0x12
name = "DME"
variant = "DME_MINI"
bus = "pt-can"
hardware = "HWEL-00001210-001.000.000"
cafd = ["CAFD-00001250-001.000.000"]
max_block_length = 0x0FFF
erase_ms_per_kib = 12
write_kib_s = 320
boot_ms = 900
security_secret = "ffeeddccbbaa99887766554433221100"
coding = { 0x3000 = "01 02" }
individual_data = { 0x4002 = "0a0b" }
dtcs = [0x12A5B0]

[[ecus.regions]]
class = "BTLD"
address = 0x8000_0000
size = "256 KiB"
unit = "BTLD-00001260-001.000.000"

[[ecus.regions]]
class = "SWFL"
address = 0x8004_0000
size = "6 MiB"
unit = "SWFL-00001280-001.000.000"
"""
DME = "ecus[1] (DME, 0x12)"


def write_profile(tmp_path: Path, text: str, name: str = "mini.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def edited(old: str, new: str) -> str:
    assert old in MINI, old
    return MINI.replace(old, new, 1)


def ethernet_ecus(profile: VehicleProfile) -> list[EcuProfile]:
    return [e for e in profile.ecus if profile.bus(e.bus).kind == "ethernet"]


# --- the shipped vehicles --------------------------------------------------------------------


def test_the_shipped_profiles_are_available() -> None:
    assert set(SHIPPED) <= set(available_profiles())
    for name in SHIPPED:
        assert load_profile(name).name == name


def test_f_series_shape() -> None:
    f = load_profile("f-series")
    assert f.series == "F030"
    assert set(f.transports) == {"hsfz", "doip"}
    assert len(f.ecus) >= 25
    assert len(f.buses) >= 4
    classic = [b for b in f.buses if b.kind == "can" and b.bitrate == 500_000]
    assert len(classic) >= 2
    assert any(b.kind in ("canfd", "flexray") for b in f.buses)
    assert all(f.ecus_on(b.name) for b in f.buses), "a bus without ECUs"
    assert f.gateway.name == "ZGW"
    assert f.bus(f.gateway.bus).kind == "ethernet"


def test_g_series_has_more_on_ethernet_than_f_series() -> None:
    f, g = load_profile("f-series"), load_profile("g-series")
    assert g.series == "G020"
    assert g.transports == ("doip",)
    assert len(g.ecus) >= 40
    assert len(ethernet_ecus(g)) > len(ethernet_ecus(f))
    kinds = {b.kind for b in g.buses}
    assert {"ethernet", "canfd", "flexray"} <= kinds
    assert {b.bitrate for b in g.buses if b.kind == "ethernet"} == {100_000_000, 1_000_000_000}
    for bus in g.buses:
        if bus.kind == "canfd":
            assert (bus.bitrate, bus.data_bitrate) == (500_000, 2_000_000)


def test_e_series_is_all_on_d_can() -> None:
    e = load_profile("e-series")
    assert e.transports == ("dcan",)
    assert 10 <= len(e.ecus) <= 14
    assert [(b.name, b.kind, b.bitrate) for b in e.buses] == [("d-can", "can", 500_000)]
    assert {ecu.bus for ecu in e.ecus} == {"d-can"}
    assert e.gateway.name == "CAS"


def test_f_series_has_the_addresses_of_domain_md() -> None:
    f = load_profile("f-series")
    expected = {
        0x10: "ZGW",
        0x12: "DME",
        0x18: "EGS",
        0x29: "DSC",
        0x30: "EPS",
        0x40: "FEM",
        0x60: "KOMBI",
        0x63: "HU",
        0x64: "PDC",
        0x72: "REM",
        0x78: "IHKA",
        0x01: "ACSM",
        0x00: "JBBF",
        0x5D: "KAFAS",
    }
    assert {a: f.ecu(a).name for a in expected} == expected


def test_real_scale_sizes_are_in_proportion() -> None:
    f = load_profile("f-series", size_scale=1.0)
    assert f.size_scale == 1.0
    largest = max(f.ecus, key=lambda e: e.flash_size)
    assert largest.address == 0x63
    assert largest.flash_size >= 500 * MiB
    assert 3 * MiB <= f.ecu(0x12).flash_size <= 16 * MiB  # DME: several MiB
    assert 2 * MiB <= f.ecu(0x10).flash_size <= 8 * MiB  # gateway
    assert f.ecu(0x64).flash_size <= 512 * 1024  # a small body ECU


@pytest.mark.parametrize("name", SHIPPED)
def test_default_scale_keeps_the_vehicle_small(name: str) -> None:
    profile = load_profile(name)
    assert profile.size_scale == 0.02
    assert profile.flash_size <= 64 * MiB
    for ecu in profile.ecus:
        for region in ecu.regions:
            assert region.size >= 4096
            assert region.size % 4096 == 0


def test_size_scale_scales_every_region() -> None:
    real, half = load_profile("f-series", size_scale=1.0), load_profile("f-series", size_scale=0.5)
    assert half.size_scale == 0.5
    for ecu_real, ecu_half in zip(real.ecus, half.ecus, strict=True):
        for a, b in zip(ecu_real.regions, ecu_half.regions, strict=True):
            assert b.size == scaled_size(a.size, 0.5)
            assert b.address == a.address
    assert half.flash_size < real.flash_size


def test_scaled_size_rounds_up_to_pages_without_binary_noise() -> None:
    assert scaled_size(204_800, 0.02) == 4096  # 204800 * 0.02 is exactly one page
    assert scaled_size(204_801, 0.02) == 8192
    assert scaled_size(1, 0.02) == 4096  # never below one page
    assert scaled_size(6 * MiB, 1.0) == 6 * MiB
    assert scaled_size(5000, 1) == 8192
    with pytest.raises(ConfigError, match="size_scale must be a positive number"):
        scaled_size(4096, 0)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_svk_parses_and_units_are_distinct(name: str) -> None:
    profile = load_profile(name)
    seen: dict[tuple[ProcessClass, int], str] = {}
    for ecu in profile.ecus:
        svk = [SgbmId.parse(text) for text in ecu.svk()]
        assert [str(u) for u in svk] == list(ecu.svk())
        assert parse_svk(encode_svk(svk)) == svk
        assert svk[0].process_class is ProcessClass.HWEL
        assert svk[1].process_class is ProcessClass.BTLD
        assert ecu.svk() == (ecu.hardware, *(r.unit for r in ecu.regions), *ecu.cafd)
        for unit in svk:
            key = (unit.process_class, unit.unit_id)
            assert key not in seen, f"{unit} in {ecu.name} and {seen[key]}"
            seen[key] = ecu.name


@pytest.mark.parametrize("name", SHIPPED)
def test_vehicle_data_is_consistent(name: str) -> None:
    profile = load_profile(name)
    addresses = [e.address for e in profile.ecus]
    assert len(set(addresses)) == len(addresses)
    assert len({e.security_secret for e in profile.ecus}) == len(profile.ecus)
    assert all(len(e.security_secret) == 16 for e in profile.ecus)
    assert str(VehicleOrder.parse(profile.vo)) == profile.vo
    assert len(VehicleOrder.parse(profile.vo).options) >= 15
    levels = [ILevel.parse(x) for x in (profile.ilevel_shipment, profile.ilevel_last)]
    assert levels[0] <= levels[1] <= ILevel.parse(profile.ilevel_current)
    for ecu in profile.ecus:
        kind = profile.bus(ecu.bus).kind
        if kind in ("can", "canfd"):
            assert 0x0800 <= ecu.max_block_length <= 0x0FFF, ecu.name
        if kind == "ethernet":
            assert ecu.max_block_length > 0x0FFF, ecu.name
        assert 300 <= ecu.boot_ms <= 2000
        assert 180 <= ecu.write_kib_s <= 480
        assert ecu.programming_counter <= ecu.programming_counter_max


def test_f_series_has_the_data_later_tests_need() -> None:
    f = load_profile("f-series")
    assert f.ilevel_current == "F030-24-03-550"
    assert any(e.programming_counter_max - e.programming_counter <= 2 for e in f.ecus)
    assert any(e.programming_counter == 3 for e in f.ecus)
    assert 0x4000 in f.ecu(0x40).individual_data  # FEM keys
    assert 0x4001 in f.ecu(0x60).individual_data  # KOMBI mileage
    assert sum(1 for e in f.ecus if e.dtcs) >= 2
    assert sum(1 for e in f.ecus if e.coding) >= 20
    assert any(e.isotp_stmin_ms == 1 for e in f.ecus)
    assert any(e.isotp_block_size == 8 for e in f.ecus)
    assert all(0x3000 <= did <= 0x30FF for e in f.ecus for did in e.coding)


# --- the model ----------------------------------------------------------------------------------


def test_profiles_are_frozen_and_their_mappings_read_only() -> None:
    dme = load_profile("f-series").ecu(0x12)
    with pytest.raises(dataclasses.FrozenInstanceError):
        dme.name = "X"  # type: ignore[misc]
    with pytest.raises(TypeError):
        dme.coding[0x3000] = b"\x00"  # type: ignore[index]
    assert dme.region("SWFL", 1).address > dme.region("SWFL").address


def test_lookups_name_what_exists() -> None:
    f = load_profile("f-series")
    assert f.bus("pt-can").bitrate == 500_000
    with pytest.raises(ConfigError, match=r"no ECU at 0x99; its ECUs: .*DME \(0x12\)"):
        f.ecu(0x99)
    with pytest.raises(ConfigError, match="no bus 'most'; its buses: enet, pt-can"):
        f.bus("most")
    with pytest.raises(ConfigError, match="has 2 SWFL region"):
        f.ecu(0x12).region("SWFL", 2)


def test_a_profile_built_in_code_is_checked_too() -> None:
    dme = load_profile("f-series").ecu(0x12)
    with pytest.raises(ConfigError, match="hardware: SGBM-ID 'HWEL-12'") as info:
        dataclasses.replace(dme, hardware="HWEL-12")
    assert isinstance(info.value.__cause__, ParseError)
    with pytest.raises(ConfigError, match=r"region SWFL: unit: .* is a BTLD, expected SWFL"):
        RegionProfile(process_class="SWFL", address=0, size=4096, unit="BTLD-00000001-001.000.000")


# --- loading files, names and plugins -----------------------------------------------------


def test_a_user_file_loads_by_path(tmp_path: Path) -> None:
    path = write_profile(tmp_path, MINI)
    for given in (path, str(path)):
        mini = load_profile(given)
        assert mini.name == "mini"
        assert [e.name for e in mini.ecus] == ["ZGW", "DME"]
    mini = load_profile(path, size_scale=0.5)
    dme = mini.ecu(0x12)
    assert [r.size for r in dme.regions] == [128 * 1024, 3 * MiB]
    assert dme.coding == {0x3000: b"\x01\x02"}
    assert dme.individual_data == {0x4002: b"\x0a\x0b"}
    assert dme.dtcs == (0x12A5B0,)
    assert dme.svk() == (
        "HWEL-00001210-001.000.000",
        "BTLD-00001260-001.000.000",
        "SWFL-00001280-001.000.000",
        "CAFD-00001250-001.000.000",
    )
    assert mini.battery_volts == 12.6
    assert mini.charger is False


def test_parse_profile_takes_text_without_io() -> None:
    mini = parse_profile(MINI.encode(), source="inline")
    assert mini.gateway_address == 0x10
    with pytest.raises(ConfigError, match=r"^inline: vin"):
        parse_profile(edited("WBA8E9C50GK123456", "WBA"), source="inline")


def test_an_unknown_name_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError) as info:
        load_profile("h-series")
    message = str(info.value)
    assert "unknown vehicle profile 'h-series'" in message
    assert "e-series, f-series, g-series" in message


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=re.escape(f"{missing}: cannot read the vehicle profile")):
        load_profile(missing)


class Plugin:
    """What the test plugin's profile function returns; a test sets ``make``."""

    def __init__(self) -> None:
        self.make: Callable[[], object] = lambda: None


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> Plugin:
    """A plugin module registered as vehicle profile ``test-car``."""
    holder = Plugin()
    module = types.ModuleType("ecuworks_test_vehicle")

    def make() -> object:
        return holder.make()

    module.__dict__["make"] = make
    monkeypatch.setitem(sys.modules, module.__name__, module)
    entry = metadata.EntryPoint(
        name="test-car", value=f"{module.__name__}:make", group=ENTRY_POINT_GROUP
    )
    real = metadata.entry_points

    def entry_points(**params: str) -> object:
        if params == {"group": ENTRY_POINT_GROUP}:
            return metadata.EntryPoints([entry])
        return real(**params)

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    return holder


def test_an_entry_point_returning_a_path(plugin: Plugin, tmp_path: Path) -> None:
    path = write_profile(tmp_path, MINI)
    plugin.make = lambda: path
    assert "test-car" in available_profiles()
    assert load_profile("test-car").name == "mini"
    assert load_profile("test-car", size_scale=0.5).ecu(0x12).regions[1].size == 3 * MiB


def test_an_entry_point_returning_a_profile(plugin: Plugin) -> None:
    built = parse_profile(MINI)
    plugin.make = lambda: built
    assert load_profile("test-car") is built
    with pytest.raises(ConfigError, match=r"cannot be rescaled to 0\.5"):
        load_profile("test-car", size_scale=0.5)


def test_a_failing_entry_point_is_a_config_error(plugin: Plugin) -> None:
    def make() -> object:
        raise RuntimeError("no such car")

    plugin.make = make
    with pytest.raises(ConfigError, match=r"'test-car'.*failed: RuntimeError: no such car"):
        load_profile("test-car")
    plugin.make = lambda: 42
    with pytest.raises(ConfigError, match="returned int; expected a path or a VehicleProfile"):
        load_profile("test-car")


# --- validation: each error names the file and the field ---------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            edited('bus = "pt-can"', 'bus = "x-can"'),
            f"{DME}: bus 'x-can' is not one of the vehicle's buses (enet, pt-can)",
            id="unknown bus",
        ),
        pytest.param(
            edited("address = 0x12", "address = 0x10"),
            "ecus[1] (DME, 0x10): address 0x10 is already ZGW (0x10)",
            id="duplicate address",
        ),
        pytest.param(
            edited("HWEL-00001210-001.000.000", "HWEL-1210-001.000.000"),
            f"{DME}: hardware: SGBM-ID 'HWEL-1210-001.000.000': unit id must be 8 hex digits",
            id="bad SGBM-ID",
        ),
        pytest.param(
            edited("CAFD-00001250-001.000.000", "SWFL-00001250-001.000.000"),
            f"{DME}: cafd[0]: SWFL-00001250-001.000.000 is a SWFL, expected CAFD",
            id="cafd of another class",
        ),
        pytest.param(
            edited('class = "SWFL"', 'class = "SWFF"'),
            f"{DME}: regions[1]: region SWFF: unit: SWFL-00001280-001.000.000 is a SWFL, "
            "expected SWFF",
            id="region class differs from its unit",
        ),
        pytest.param(
            edited("address = 0x8004_0000", "address = 0x8002_0000"),
            f"{DME}: region SWFL at 0x80020000 (6291456 bytes) overlaps region BTLD at "
            "0x80000000-0x8003FFFF (at real size)",
            id="overlapping regions",
        ),
        pytest.param(
            edited(
                'class = "BTLD"\naddress = 0x8000_0000', 'class = "SWFF"\naddress = 0x8000_0000'
            ).replace("BTLD-00001260", "SWFF-00001260"),
            f"{DME}: regions: the first region must be the bootloader (BTLD)",
            id="no bootloader first",
        ),
        pytest.param(
            edited("transports = [", "gateway_address = 0x11\ntransports = ["),
            "gateway_address 0x11 is not the address of an ECU",
            id="gateway is no ECU",
        ),
        pytest.param(
            edited('bus = "enet"', 'bus = "pt-can"'),
            "gateway_address 0x10: transports ['hsfz'] need the gateway on an ethernet bus",
            id="HSFZ gateway on CAN",
        ),
        pytest.param(
            edited("WBA8E9C50GK123456", "WBA8E9C50GK12345"),
            "vin 'WBA8E9C50GK12345' must be 17 characters",
            id="short VIN",
        ),
        pytest.param(
            edited("WBA8E9C50GK123456", "WBA8E9C50GK12345O"),
            "vin 'WBA8E9C50GK12345O' must be 17 characters: digits and capitals except I, O, Q",
            id="VIN with O",
        ),
        pytest.param(
            edited("&$609", "&609"),
            "vo: vehicle order '8E9C#0715*A96%LCSW&609': after '&' every code starts with",
            id="bad VO",
        ),
        pytest.param(
            edited('current = "F030-24-03-550"', 'current = "G020-24-03-550"'),
            "ilevel_current: G020-24-03-550 is of series G020, the vehicle is F030",
            id="I-level of another series",
        ),
        pytest.param(
            edited('last = "F030-23-11-530"', 'last = "F030-23-13-530"'),
            "ilevel_last: I-level 'F030-23-13-530': month must be 01-12",
            id="bad I-level",
        ),
        pytest.param(
            edited('shipment = "F030-15-07-520"', 'shipment = "F030-25-07-520"'),
            "ilevel: expected shipment <= last <= current",
            id="I-levels out of order",
        ),
        pytest.param(
            edited("max_block_length = 0x0FFF", "max_block_length = 2"),
            f"{DME}: max_block_length must be 3-0xFFFF",
            id="max_block_length too small",
        ),
        pytest.param(
            edited('"ffeeddccbbaa99887766554433221100"', '""'),
            f"{DME}: security_secret must be at least one byte",
            id="empty secret",
        ),
        pytest.param(
            edited('"ffeeddccbbaa99887766554433221100"', '"ffee-dd"'),
            f"{DME}: security_secret: 'ffee-dd' is not hex bytes",
            id="secret not hex",
        ),
        pytest.param(
            edited('transports = ["hsfz"]', 'transports = ["hsfz", "most"]'),
            "transports ['hsfz', 'most'] must be distinct names from ('doip', 'hsfz', 'dcan')",
            id="unknown transport",
        ),
        pytest.param(
            edited("max_block_length = 0x0FFF", "max_blocklength = 0x0FFF"),
            f"{DME}: max_block_length: missing; expected an integer",
            id="missing key",
        ),
        pytest.param(
            edited("boot_ms = 900", "boot_ms = 900\nboot_time = 1"),
            f"{DME}: boot_time: unknown key (known here: ",
            id="unknown key",
        ),
        pytest.param(
            edited("max_block_length = 0x0FFF", 'max_block_length = "0x0FFF"'),
            f"{DME}: max_block_length: expected an integer, got a string '0x0FFF'",
            id="wrong type",
        ),
        pytest.param(
            edited('size = "6 MiB"', 'size = "6 MB"'),
            f"{DME}: regions[1]: size: '6 MB' is no size",
            id="bad size",
        ),
        pytest.param(
            edited("coding = { 0x3000", "coding = { 3000"),
            f"{DME}: coding: 3000: a DID is written as 0x and 1-4 hex digits",
            id="bad coding DID",
        ),
        pytest.param(
            edited("coding = { 0x3000", "coding = { 0xF190"),
            f"{DME}: coding: DID 0xF190 is answered by the ECU itself",
            id="coding on a server DID",
        ),
        pytest.param(
            edited("boot_ms = 900", "boot_ms = 900\nprogramming_counter = 1001"),
            f"{DME}: programming_counter 1001 must be 0-1000",
            id="counter beyond its maximum",
        ),
        pytest.param(
            edited("boot_ms = 900", "boot_ms = 900\nisotp_stmin_ms = 0.25"),
            f"{DME}: isotp_stmin_ms must be 0-127 (whole ms) or 0.1-0.9, got 0.25",
            id="STmin ISO-TP cannot send",
        ),
        pytest.param(
            edited('kind = "can"', 'kind = "canfd"'),
            "buses[1]: bus pt-can: a CAN FD bus needs data_bitrate >= bitrate",
            id="CAN FD without data rate",
        ),
        pytest.param(
            edited("size_scale = 1.0", "size_scale = 0"),
            "size_scale must be a positive number, got 0",
            id="zero scale",
        ),
        pytest.param(
            edited("[ilevel]", "[ilevel\n"),
            "not valid TOML: ",
            id="TOML syntax",
        ),
    ],
)
def test_validation_errors_name_the_file_and_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write_profile(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert str(info.value).startswith(f"{path}: "), str(info.value)
    assert message in str(info.value)


def test_the_overlap_check_uses_scaled_sizes_too(tmp_path: Path) -> None:
    # Fine at real size, but 4 KiB pages at a large scale collide.
    path = write_profile(tmp_path, MINI)
    with pytest.raises(ConfigError, match=f"{re.escape(DME)}: region SWFL at 0x80040000"):
        load_profile(path, size_scale=2.0)


def test_shipped_error_messages_name_the_shipped_file() -> None:
    profile = load_profile("f-series")
    assert isinstance(profile, VehicleProfile)
    with pytest.raises(ConfigError, match=r"^f-series\.toml: size_scale must be a positive"):
        load_profile("f-series", size_scale=-1)
