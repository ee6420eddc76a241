"""Which P-Data a workstation uses: the demo until a repository is configured, then only it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from tests.test_cli import run_cli

from ecuworks.errors import ConfigError, PDataMismatch
from ecuworks.pdata.demo import DEMO_FORMAT, DEMO_FORMAT_FILE
from ecuworks.pdata.keys import TOP_LEVEL_ROLES, KeyRing
from ecuworks.pdata.model import Segment, SeriesCatalog, UnitInfo
from ecuworks.pdata.repository import RepositoryBuilder
from ecuworks.pdata.serve import serve_directory
from ecuworks.pdata.source import DEMO_DIR, open_pdata
from ecuworks.pdata.store import LocalStore
from ecuworks.wire.unit_image import UnitHeader


def test_the_demo_is_generated_on_first_use_and_said_on_every_run(tmp_path: Path) -> None:
    first = open_pdata(tmp_path)
    assert first.demo
    assert "generated now" in first.note
    timestamp = tmp_path / DEMO_DIR / "repository" / "timestamp.json"
    written = timestamp.stat().st_mtime_ns
    again = open_pdata(tmp_path)
    assert again.demo
    assert "no repository configured" in again.note
    assert "pdata sync URL --root FILE" in again.note
    assert timestamp.stat().st_mtime_ns == written  # not generated twice
    assert set(again.catalog.series) == {"E090", "F030", "G020"}


def test_a_unit_streams_verified_bytes_that_match_its_header(pdata_home: Path) -> None:
    pdata = open_pdata(pdata_home)
    unit = next(u for u in pdata.catalog.catalog("F030").units if u.sgbm.startswith("SWFL"))
    digest = hashlib.sha256()
    first = b""
    for chunk in pdata.open_unit(unit.sgbm):
        first = first or chunk
        digest.update(chunk)
    assert digest.hexdigest() == unit.sha256
    assert str(UnitHeader.parse(first[:64]).sgbm) == unit.sgbm


def test_a_tampered_demo_image_yields_not_one_byte(pdata_home: Path) -> None:
    pdata = open_pdata(pdata_home)
    unit = pdata.catalog.catalog("G020").units[0]
    path = (
        pdata_home / DEMO_DIR / "repository" / "targets" / pdata.unit_target(unit.sgbm).stored_name
    )
    data = bytearray(path.read_bytes())
    path.unlink()  # a hard link to the session's demo: write a copy, never through it
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    stream = pdata.open_unit(unit.sgbm)
    with pytest.raises(PDataMismatch, match=f"P-Data mismatch: G020/units/{unit.sgbm}.bin"):
        next(stream)


@pytest.mark.parametrize("marker", [None, "1\n"])
def test_a_demo_from_an_older_ecuworks_is_regenerated(pdata_home: Path, marker: str | None) -> None:
    demo_dir = pdata_home / DEMO_DIR
    # What an older ecuworks left: no marker (or an old one), and its own catalog bytes.
    (demo_dir / DEMO_FORMAT_FILE).unlink()
    if marker is not None:
        (demo_dir / DEMO_FORMAT_FILE).write_text(marker)
    (demo_dir / "repository" / "left-by-the-old-version").write_text("stale")
    pdata = open_pdata(pdata_home)
    assert pdata.demo
    assert "regenerated now" in pdata.note
    assert f"this ecuworks writes {DEMO_FORMAT}" in pdata.note
    assert (demo_dir / DEMO_FORMAT_FILE).read_text() == f"{DEMO_FORMAT}\n"
    assert not (demo_dir / "repository" / "left-by-the-old-version").exists()
    assert [p.name for p in pdata_home.iterdir()] == [DEMO_DIR]  # nothing left beside it
    assert pdata.catalog.ecu("F030", 0x63).individual_data == (0x4004,)
    again = open_pdata(pdata_home)
    assert "no repository configured" in again.note  # regenerated once, not on every run


def test_half_a_demo_directory_is_refused_with_advice(tmp_path: Path) -> None:
    (tmp_path / DEMO_DIR).mkdir()
    with pytest.raises(ConfigError, match="remove it and it is generated again"):
        open_pdata(tmp_path)


def _repository(out: Path, demo_home: Path) -> bytes:
    """A one-series repository with a catalog and one demo unit; returns its root."""
    builder = RepositoryBuilder(out, KeyRing.generate((*TOP_LEVEL_ROLES, "F030")))
    source = open_pdata(demo_home)
    demo = source.catalog.catalog("F030")
    unit = next(u for u in demo.units if u.sgbm.startswith("SWFL"))
    image = b"".join(source.open_unit(unit.sgbm))
    builder.add_target("F030", unit.path, image, custom={"sgbm": unit.sgbm, "release": 1})
    catalog = SeriesCatalog(
        series="F030",
        ilevels=demo.ilevels[:1],
        ecus=demo.ecus,
        units=(UnitInfo(sgbm=unit.sgbm, path=unit.path, size=unit.size, sha256=unit.sha256,
                        segments=(Segment(address=0, offset=0, length=unit.size),)),),
    )  # fmt: skip
    builder.add_target("F030", "catalog.json", catalog.to_bytes(), custom={"kind": "catalog"})
    builder.publish()
    return (out / "1.root.json").read_bytes()


async def test_a_configured_repository_replaces_the_demo(tmp_path: Path, pdata_home: Path) -> None:
    root = _repository(tmp_path / "repo", pdata_home)
    home = tmp_path / "workstation"
    running, _ = await serve_directory(tmp_path / "repo")
    try:
        store = LocalStore(home)
        store.configure(running.url, root)
        await store.sync()
    finally:
        await running.close()
    pdata = open_pdata(home)
    assert not pdata.demo
    assert running.url in pdata.note
    assert pdata.catalog.series == ("F030",)
    assert not (home / DEMO_DIR).exists()
    (unit,) = pdata.catalog.catalog("F030").units
    assert hashlib.sha256(b"".join(pdata.open_unit(unit.sgbm))).hexdigest() == unit.sha256


async def test_pdata_status_names_the_demo_and_its_series(pdata_home: Path) -> None:
    code, out, err = await run_cli("--home", str(pdata_home), "pdata", "status", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert status["demo"] is True
    assert [s["series"] for s in status["series"]] == ["E090", "F030", "G020"]
    assert all(len(s["ilevels"]) >= 3 for s in status["series"])
    assert "P-Data: the demo of the simulated vehicles" in err
