"""The P-Data catalog model: JSON round trips and errors that name the field."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecuworks.errors import ConfigError
from ecuworks.pdata.model import (
    CodingRecord,
    Condition,
    ILevelRelease,
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
