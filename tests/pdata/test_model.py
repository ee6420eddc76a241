"""The P-Data catalog model: JSON round trips and errors that name the field."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecuworks.errors import ConfigError
from ecuworks.pdata.model import (
    CodingLayout,
    CodingRecord,
    Condition,
    EcuInfo,
    ILevelRelease,
    RegionInfo,
    SeriesCatalog,
    TargetSvk,
    TargetUnit,
)
from ecuworks.wire.vo import VehicleOrder

_OPTIONS = st.sampled_from(["$609", "$610", "$3AG", "$6NS", "$205"])
_CONDITIONS = st.recursive(
    st.builds(Condition.has, _OPTIONS),
    lambda inner: st.one_of(
        st.builds(lambda c: Condition(all_of=tuple(c)), st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda c: Condition(any_of=tuple(c)), st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda c: Condition(negate=c), inner),
    ),
    max_leaves=8,
)
_SGBM = st.builds(
    lambda cls, uid, v: f"{cls}-{uid:08X}-{v[0]:03d}.{v[1]:03d}.{v[2]:03d}",
    st.sampled_from(["SWFL", "BTLD", "CAFD", "IBAD"]),
    st.integers(0, 0xFFFFFFFF),
    st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
)


@given(_CONDITIONS)
def test_condition_round_trip(condition: Condition) -> None:
    again = Condition.from_json(json.loads(json.dumps(condition.to_json())))
    assert again == condition


@given(st.lists(st.tuples(_SGBM, st.none() | _CONDITIONS), max_size=6))
def test_target_svk_round_trip(entries: list[tuple[str, Condition | None]]) -> None:
    units = {s.rsplit("-", 1)[0]: TargetUnit(sgbm=s, when=c) for s, c in entries}
    svk = TargetSvk(
        variant="DME_B48", hardware="HWEL-00F31210-006.017.022", units=tuple(units.values())
    )
    assert TargetSvk.from_json(json.loads(json.dumps(svk.to_json())), "t") == svk


def test_condition_evaluates_without_eval() -> None:
    vo = VehicleOrder.parse("8E9C#0715*A96%LCSW&$609$6NS")
    nav_no_hud = Condition(all_of=(Condition.has("$609"), Condition(negate=Condition.has("$610"))))
    assert nav_no_hud.matches(vo)
    assert not Condition(any_of=(Condition.has("$610"), Condition.has("$3AG"))).matches(vo)


def test_sum8_checksum_is_documented_rule() -> None:
    record = CodingRecord(did=0x3000, length=3, checksum="sum8", checksum_at=2, checksum_seed=5)
    assert record.with_checksum(bytes([1, 2, 0])) == bytes([1, 2, 8])


def _catalog() -> dict[str, object]:
    release = ILevelRelease(
        ilevel="F030-24-03-550",
        date="2024-03-15",
        targets=(
            TargetSvk(
                variant="DME_B48",
                hardware="HWEL-00F31210-006.017.022",
                units=(TargetUnit(sgbm="SWFL-00F31280-002.011.017"),),
            ),
        ),
    )
    return SeriesCatalog(series="F030", ilevels=(release,), ecus=(), units=()).to_json()


def test_series_catalog_round_trip() -> None:
    data = _catalog()
    catalog = SeriesCatalog.from_json(data)
    assert SeriesCatalog.from_bytes(catalog.to_bytes()) == catalog


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["ilevels"][0].update(ilevel="F030-24-13-550"), "ilevels[0]: ilevel"),
        (lambda d: d["ilevels"][0]["targets"][0]["units"][0].update(sgbm="SWFL-1"), "units[0]"),
        (lambda d: d["ilevels"][0].update(date=7), "ilevels[0].date"),
        (lambda d: d.update(colour="red"), "colour: unknown key"),
        (lambda d: d.pop("series"), "series: missing"),
        (lambda d: d["ilevels"][0]["targets"][0]["units"][0].update(when={"eval": "1"}), "when"),
    ],
)
def test_errors_name_the_field(mutate: object, field: str) -> None:
    data = json.loads(json.dumps(_catalog()))
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ConfigError, match=r"catalog\.json") as info:
        SeriesCatalog.from_json(data)
    assert field in str(info.value)


def test_ilevels_must_be_ordered() -> None:
    data = json.loads(json.dumps(_catalog()))
    data["ilevels"].insert(0, {**data["ilevels"][0], "ilevel": "F030-25-01-600"})
    with pytest.raises(ConfigError, match="not newer"):
        SeriesCatalog.from_json(data)


def _hu(**changes: object) -> EcuInfo:
    fields: dict[str, object] = {
        "address": 0x63,
        "name": "HU",
        "variant": "HU_NBT",
        "bus": "enet",
        "max_block_length": 0xFFFF,
        "erase_ms_per_kib": 2.0,
        "write_kib_s": 480.0,
        "boot_ms": 2000.0,
        "security_algorithm": "hmac-sha256",
        "security_secret": "e9ef8a01",
        "regions": (RegionInfo(process_class="SWFL", address=0x10000, size=4096),),
        "coding": CodingLayout(records=(CodingRecord(did=0x3000, length=4),)),
    }
    return EcuInfo(**(fields | changes))  # type: ignore[arg-type]


def _catalog_bytes(ecu: EcuInfo) -> bytes:
    data = _catalog()
    data["ecus"] = [ecu.to_json()]
    return SeriesCatalog.from_json(data).to_bytes()


def test_individual_data_dids_round_trip() -> None:
    hu = _hu(individual_data=(0x4004, 0x4010))
    assert hu.to_json()["individual_data"] == [0x4004, 0x4010]
    again = SeriesCatalog.from_bytes(_catalog_bytes(hu))
    assert again.ecus == (hu,)
    assert again.ecus[0].individual_data == (0x4004, 0x4010)


def test_an_ecu_without_individual_data_keeps_its_exact_bytes() -> None:
    hu = _hu()
    assert "individual_data" not in hu.to_json()
    data = _catalog_bytes(hu)
    assert b"individual_data" not in data
    again = SeriesCatalog.from_bytes(data)
    assert again.ecus[0].individual_data == ()
    assert again.to_bytes() == data


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([0x10000], r"individual_data\[0\]: DID 0x10000 must be 0-0xffff"),
        ([-1], r"individual_data\[0\]: DID -0x1 must be 0-0xffff"),
        ([0x4004, 0x4004], r"individual_data\[1\]: DID 0x4004 is listed twice"),
        ([0x3000], r"individual_data\[0\]: DID 0x3000 is also a coding record"),
        (["0x4004"], r"individual_data\[0\]: expected an integer DID, got str"),
        ([True], r"individual_data\[0\]: expected an integer DID, got a boolean"),
        ({"0x4004": 1}, r"individual_data: expected an array, got dict"),
    ],
)
def test_invalid_individual_data_is_refused_naming_the_ecu(value: object, message: str) -> None:
    data = _catalog()
    ecu = _hu().to_json()
    ecu["individual_data"] = value
    data["ecus"] = [ecu]
    with pytest.raises(ConfigError, match=message) as info:
        SeriesCatalog.from_json(json.loads(json.dumps(data)))
    assert "catalog.json.ecus[0]" in str(info.value)


def test_individual_data_is_checked_when_built_in_code_too() -> None:
    with pytest.raises(ConfigError, match="DID 0x4004 is listed twice"):
        _hu(individual_data=(0x4004, 0x4004))
