"""Demo P-Data: deterministic, signed, and matching the simulated cars."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ecuworks.pdata.catalog import Catalog
from ecuworks.pdata.demo import (
    DEMO_FORMAT,
    DEMO_FORMAT_FILE,
    DemoResult,
    demo_format,
    generate_demo,
)
from ecuworks.pdata.model import CodingLayout
from ecuworks.pdata.trust import TrustedRepository
from ecuworks.pdata.verify import verify_directory
from ecuworks.profiles import load_profile, parse_ecu
from ecuworks.wire.ilevel import ILevel
from ecuworks.wire.sgbm import SgbmId
from ecuworks.wire.unit_image import HEADER_SIZE, UnitHeader
from ecuworks.wire.vo import VehicleOrder

VEHICLES = ("e-series", "f-series", "g-series")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    return generate_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def catalog(demo: DemoResult) -> Catalog:
    """The catalogs, read only after their bytes verified against the signed metadata."""
    repo = TrustedRepository(demo.root_path.read_bytes())
    repo.update_timestamp((demo.repo_dir / "timestamp.json").read_bytes())
    snap = repo.timestamp.snapshot_meta.version
    repo.update_snapshot((demo.repo_dir / f"{snap}.snapshot.json").read_bytes())
    meta = repo.snapshot.meta
    repo.update_targets(
        (demo.repo_dir / f"{meta['targets.json'].version}.targets.json").read_bytes()
    )
    blobs = []
    for series in repo.series:
        data = (demo.repo_dir / f"{meta[f'{series}.json'].version}.{series}.json").read_bytes()
        repo.update_delegated(series, data)
        info = repo.target_info(series, "catalog.json")
        blob = (demo.repo_dir / "targets" / info.stored_name).read_bytes()
        repo.verify_target(info, [blob])
        blobs.append(blob)
    return Catalog.from_json(*blobs)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_two_runs_are_byte_identical(demo: DemoResult, tmp_path: Path) -> None:
    again = generate_demo(tmp_path)
    first = _tree(demo.repo_dir.parent)
    assert _tree(tmp_path) == first
    assert again.files == demo.files
    assert "keys/README" in first
    assert b"DEMO" in first["keys/README"]


def test_repository_verifies_from_its_root(demo: DemoResult) -> None:
    report = verify_directory(demo.repo_dir, demo.root_path)
    assert report.ok
    assert set(report.series) == {"E090", "F030", "G020"}
    assert len(report.verified) == demo.files - len(list(demo.repo_dir.glob("*.json")))


@pytest.mark.parametrize("vehicle", VEHICLES)
def test_latest_is_newer_than_what_the_car_has(catalog: Catalog, vehicle: str) -> None:
    profile = load_profile(vehicle)
    levels = catalog.ilevels(profile.series)
    assert len(levels) >= 4
    assert levels == sorted(levels)
    assert catalog.latest(profile.series) > ILevel.parse(profile.ilevel_current)
    for text in (profile.ilevel_shipment, profile.ilevel_last, profile.ilevel_current):
        assert ILevel.parse(text) in levels


@pytest.mark.parametrize("vehicle", VEHICLES)
def test_target_at_current_is_what_the_car_has(catalog: Catalog, vehicle: str) -> None:
    profile = load_profile(vehicle)
    vo = VehicleOrder.parse(profile.vo)
    changed = 0
    for ecu in profile.ecus:
        current = catalog.target_svk(
            profile.series, profile.ilevel_current, ecu.variant, ecu.hardware, vo
        )
        assert [str(u) for u in current] == list(ecu.svk())
        latest = catalog.target_svk(
            profile.series, catalog.latest(profile.series), ecu.variant, ecu.hardware, vo
        )
        changed += latest != current
    assert changed >= len(profile.ecus) // 3


def test_f_series_engine_has_real_work(catalog: Catalog) -> None:
    profile = load_profile("f-series")
    dme = profile.ecu(0x12)
    vo = VehicleOrder.parse(profile.vo)
    latest = catalog.target_svk("F030", catalog.latest("F030"), dme.variant, dme.hardware, vo)
    assert [str(u) for u in latest] != list(dme.svk())
    swfl = [u for u in latest if u.process_class.name == "SWFL"]
    installed = [SgbmId.parse(r.unit) for r in dme.regions if r.process_class == "SWFL"]
    assert all(new.version > old.version for new, old in zip(swfl, installed, strict=True))
    # The second hardware of the same variant has its own software.
    other = next(
        t
        for t in catalog.release("F030", catalog.latest("F030")).targets
        if t.variant == dme.variant and t.hardware != dme.hardware
    )
    other_svk = catalog.target_svk("F030", catalog.latest("F030"), dme.variant, other.hardware, vo)
    assert {u.unit_id for u in other_svk} != {u.unit_id for u in latest}


def test_vo_conditional_unit_needs_its_option(catalog: Catalog) -> None:
    profile = load_profile("f-series")
    hu = profile.ecu(0x63)
    vo = VehicleOrder.parse(profile.vo)
    level = catalog.latest("F030")
    with_nav = catalog.target_svk("F030", level, hu.variant, hu.hardware, vo)
    without = catalog.target_svk("F030", level, hu.variant, hu.hardware, vo.without_option("$609"))
    missing = set(with_nav) - set(without)
    assert len(missing) == 1
    assert next(iter(missing)).unit_id == SgbmId.parse(hu.regions[-2].unit).unit_id


@pytest.mark.parametrize("vehicle", VEHICLES)
def test_images_parse_match_the_catalog_and_fit_their_regions(
    demo: DemoResult, catalog: Catalog, vehicle: str
) -> None:
    profile = load_profile(vehicle)
    cat = catalog.catalog(profile.series)
    for info in cat.units:
        stored = demo.repo_dir / "targets" / profile.series / "units"
        data = (stored / f"{info.sha256}.{info.sgbm}.bin").read_bytes()
        assert len(data) == info.size
        assert hashlib.sha256(data).hexdigest() == info.sha256
        header = UnitHeader.parse(data)
        assert str(header.sgbm) == info.sgbm
        assert hashlib.sha256(data[HEADER_SIZE:]).digest() == header.payload_sha256
        (segment,) = info.segments
        regions = [
            r
            for e in cat.ecus
            for r in e.regions
            if r.address == segment.address and r.process_class == header.sgbm.process_class.name
        ]
        assert any(segment.length <= r.size for r in regions)
        assert catalog.target_path(info.sgbm) == f"{profile.series}/units/{info.sgbm}.bin"


@pytest.mark.parametrize("vehicle", VEHICLES)
def test_ecu_metadata_matches_the_car(catalog: Catalog, vehicle: str) -> None:
    profile = load_profile(vehicle)
    for ecu in profile.ecus:
        info = catalog.ecu(profile.series, ecu.address)
        assert (info.name, info.variant, info.bus) == (ecu.name, ecu.variant, ecu.bus)
        assert info.secret == ecu.security_secret
        assert [(r.process_class, r.address, r.size) for r in info.regions] == [
            (r.process_class, r.address, r.size) for r in ecu.regions
        ]
        assert info.individual_data == tuple(sorted(ecu.individual_data))
        assert catalog.ecu(profile.series, ecu.name) == info


def test_head_unit_lists_its_individual_data_for_a_replacement(catalog: Catalog) -> None:
    hu = catalog.ecu("F030", 0x63)
    assert hu.name == "HU"
    assert hu.individual_data == (0x4004,)  # driver profiles
    assert 0x4004 not in {r.did for r in hu.coding.records}


def _code(
    layout: CodingLayout, coding: dict[int, bytes], values: dict[str, str]
) -> dict[int, bytes]:
    out = {did: bytearray(data) for did, data in coding.items()}
    for p in layout.parameters:
        if p.name in values:
            byte = out[p.did][p.byte] & ~p.mask
            out[p.did][p.byte] = byte | (p.values[values[p.name]] << p.shift)
    records = {r.did: r for r in layout.records}
    return {did: records[did].with_checksum(bytes(data)) for did, data in out.items()}


@pytest.mark.parametrize("vehicle", VEHICLES)
def test_coding_rules_reproduce_the_cars_coding(catalog: Catalog, vehicle: str) -> None:
    profile = load_profile(vehicle)
    vo = VehicleOrder.parse(profile.vo)
    for ecu in profile.ecus:
        if not ecu.cafd:
            continue
        values = catalog.coding_values(profile.series, ecu.address, vo)
        layout = catalog.ecu(profile.series, ecu.address).coding
        assert _code(layout, dict(ecu.coding), values) == dict(ecu.coding)


@pytest.mark.parametrize("vehicle", VEHICLES)
def test_retrofit_installs_a_new_ecu_the_simulator_accepts(catalog: Catalog, vehicle: str) -> None:
    profile = load_profile(vehicle)
    (retrofit,) = catalog.retrofits(profile.series)
    assert not VehicleOrder.parse(profile.vo).has(retrofit.option)
    (table,) = retrofit.install
    ecu = parse_ecu(table, size_scale=profile.size_scale)
    assert ecu.address not in {e.address for e in profile.ecus}
    assert ecu.bus in {b.name for b in profile.buses}
    assert retrofit.program == (ecu.address,)
    assert {a.app_id for a in catalog.fsc(profile.series)} >= set(retrofit.enable)
    vo = VehicleOrder.parse(profile.vo).with_option(retrofit.option)
    target = catalog.target_svk(
        profile.series, catalog.latest(profile.series), ecu.variant, ecu.hardware, vo
    )
    assert [str(u) for u in target] != list(ecu.svk())  # programming it is real work
    for unit in target[1:]:
        if unit.process_class.name != "CAFD":
            assert catalog.unit(unit).size > HEADER_SIZE


def test_dtc_descriptions_cover_the_cars(catalog: Catalog) -> None:
    for vehicle in VEHICLES:
        profile = load_profile(vehicle)
        for ecu in profile.ecus:
            for dtc in ecu.dtcs:
                assert catalog.dtc_text(profile.series, dtc)


def test_the_format_marker_tells_a_current_demo_from_an_older_one(
    demo: DemoResult, tmp_path: Path
) -> None:
    assert demo_format(demo.repo_dir.parent) == DEMO_FORMAT
    assert demo_format(tmp_path) is None  # no demo written here
    (tmp_path / "repository").mkdir()
    (tmp_path / "repository" / "timestamp.json").write_text("{}")
    assert demo_format(tmp_path) == 1  # from before the marker
    (tmp_path / DEMO_FORMAT_FILE).write_text("garbage")
    assert demo_format(tmp_path) == 0  # unreadable: never taken for the current one
