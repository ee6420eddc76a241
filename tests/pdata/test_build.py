"""``ecuworks pdata build``: a spec with HEX, S-record and ODX-F images becomes signed P-Data
that a workstation syncs, verifies and streams to the byte."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import bincopy
import pytest
from tests.pdata.odx_sample import ODX_F, write_pdx
from tests.test_cli import run_cli

from ecuworks.pdata.serve import serve_directory
from ecuworks.pdata.source import open_pdata
from ecuworks.pdata.store import LocalStore
from ecuworks.wire.ilevel import ILevel
from ecuworks.wire.unit_image import HEADER_SIZE, UnitHeader
from ecuworks.wire.vo import VehicleOrder

HWEL = "HWEL-00001234-001.000.000"
SWFL = "SWFL-000012A0-003.002.001"
SWFL_SREC = "SWFL-000012A1-001.000.000"
SWFL_ODX = "SWFL-000012A2-001.000.000"
NAV = "SWFL-000012A3-002.000.000"
CAFD = "CAFD-000012C0-001.002.003"
# Two segments 0x100 bytes apart: the payload fills the gap with erased flash.
PARTS = [(0x0100_0000, bytes(range(256)) * 16), (0x0100_1100, b"\xa5" * 3000)]

SERIES = f"""
series = "F030"
vehicle = "workshop test"

[[ilevels]]
ilevel = "F030-24-03-550"
date = 2024-03-15
[[ilevels.targets]]
variant = "DME_F030"
hardware = "{HWEL}"
units = [
  {{ sgbm = "{HWEL}" }},
  {{ sgbm = "{SWFL}" }},
  {{ sgbm = "{SWFL_SREC}" }},
  {{ sgbm = "{SWFL_ODX}" }},
  {{ sgbm = "{NAV}", when = {{ option = "$609" }} }},
  {{ sgbm = "{CAFD}" }},
]

[[ecus]]
address = 0x12
name = "DME"
variant = "DME_F030"
bus = "pt-can"
max_block_length = 0x0FFF
erase_ms_per_kib = 5.0
write_kib_s = 200.0
boot_ms = 800.0
security_algorithm = "hmac-sha256"
security_secret = "00112233445566778899aabbccddeeff"
regions = [{{ class = "SWFL", address = 0x0100_0000, size = 0x0010_0000 }}]
coding = {{ records = [], parameters = [] }}

[[units]]
sgbm = "{SWFL}"
image = "images/dme.hex"
compress = "zlib"

[[units]]
sgbm = "{SWFL_SREC}"
image = "images/dme.s37"
address = 0x0100_0000

[[units]]
sgbm = "{SWFL_ODX}"
pdx = "images/dme.pdx"
datablock = "DB_CAL"

[[units]]
sgbm = "{NAV}"
image = "images/nav.bin"
base_address = 0x0200_0000
release = 4

[[dtcs]]
code = 0x12A5B0
text = "DME: intake camshaft adjustment"
"""


def _binfile() -> bincopy.BinFile:
    binfile = bincopy.BinFile()
    for address, data in PARTS:
        binfile.add_binary(data, address=address)
    return binfile


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    spec_dir = tmp_path / "spec"
    images = spec_dir / "images"
    images.mkdir(parents=True)
    (images / "dme.hex").write_text(_binfile().as_ihex())
    (images / "dme.s37").write_text(_binfile().as_srec())
    (images / "nav.bin").write_bytes(b"map data " * 1000)
    code = bincopy.BinFile()  # what the ODX-F's DB_CODE block expects in its data file
    code.add_binary(b"\x11" * 50000, address=0x8000_0000)
    code.add_binary(b"\x22" * 0x4E20, address=0x8001_0000)
    write_pdx(images / "dme.pdx", ODX_F, {"dme_code.hex": code.as_ihex().encode()})
    (spec_dir / "F030.toml").write_text(SERIES)
    return spec_dir


async def _build(spec: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    return await run_cli("pdata", "build", str(spec), str(out), *extra)


async def test_a_built_repository_syncs_and_streams_each_unit_to_the_byte(
    spec: Path, tmp_path: Path
) -> None:
    out = tmp_path / "repo"
    code, stdout, err = await _build(spec, out, "--new-keys", "--json")
    assert code == 0, err
    assert json.loads(stdout)["series"] == {"F030": 4}
    assert "keep the root and targets keys offline" in err
    code, _, err = await run_cli("pdata", "verify", str(out), "--root", str(out / "1.root.json"))
    assert code == 0, err

    home = tmp_path / "workstation"
    running, _ = await serve_directory(out)
    try:
        store = LocalStore(home)
        store.configure(running.url, (out / "1.root.json").read_bytes())
        await store.sync()
    finally:
        await running.close()
    pdata = open_pdata(home)
    catalog = pdata.catalog
    vo = VehicleOrder.parse("5A31#0724*A96%LCSW&$1CA$609")
    level = ILevel.parse("F030-24-03-550")
    svk = [str(u) for u in catalog.target_svk("F030", level, "DME_F030", HWEL, vo)]
    assert svk == [HWEL, SWFL, SWFL_SREC, SWFL_ODX, NAV, CAFD]

    # HEX: header, then both segments with 0x100 bytes of 0xFF between them
    image = b"".join(pdata.open_unit(SWFL))
    header = UnitHeader.parse(image[:HEADER_SIZE])
    expected = PARTS[0][1] + b"\xff" * 0x100 + PARTS[1][1]
    assert str(header.sgbm) == SWFL
    assert image[HEADER_SIZE:] == expected
    assert header.payload_sha256 == hashlib.sha256(expected).digest()
    (segment,) = pdata.unit(SWFL).segments
    assert (segment.address, segment.offset, segment.length) == (0x0100_0000, 0, len(image))
    # S-record of the same data: the same payload
    assert b"".join(pdata.open_unit(SWFL_SREC))[HEADER_SIZE:] == expected
    # ODX-F: the DB_CAL block's two segments, 0xFA bytes apart
    odx = b"".join(pdata.open_unit(SWFL_ODX))[HEADER_SIZE:]
    assert odx == bytes.fromhex("CAFEBABE0102") + b"\xff" * 0xFA + bytes.fromhex("FFEE")
    assert pdata.unit(SWFL_ODX).segments[0].address == 0xA000_0000
    # raw binary at its base address; the target carries its hardware and release
    assert pdata.unit(NAV).segments[0].address == 0x0200_0000
    nav = pdata.unit_target(NAV)
    assert (nav.custom["hardware"], nav.custom["release"]) == ([HWEL], 4)
    # the compressed form inflates to the very image
    compressed = pdata.unit(SWFL).compressed
    assert compressed is not None
    info = pdata.repo.target_info("F030", compressed.path)
    assert zlib.decompress(store.cached_path(info).read_bytes()) == image
    assert catalog.dtc_text("F030", 0x12A5B0) == "DME: intake camshaft adjustment"


async def test_a_second_build_publishes_the_next_release(spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "repo"
    assert (await _build(spec, out, "--new-keys"))[0] == 0
    (spec / "images" / "nav.bin").write_bytes(b"newer map data " * 1000)
    code, stdout, err = await _build(spec, out, "--json")
    assert code == 0, err
    assert json.loads(stdout)["snapshot_version"] == 2
    code, stdout, err = await run_cli(
        "pdata", "verify", str(out), "--root", str(out / "1.root.json"), "--json"
    )
    assert code == 0, err
    assert json.loads(stdout)["snapshot_version"] == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.replace(f'"{SWFL_SREC}"\nimage', '"SWFL-000012FF-001.000.000"\nimage'),
         f"{SWFL_SREC} has no [[units]] entry"),
        (lambda s: s.replace("max_block_length = 0x0FFF\n", ""), "max_block_length"),
        (lambda s: s.replace('datablock = "DB_CAL"', 'datablock = "DB_NONE"'),
         "no DATABLOCK 'DB_NONE' (has: DB_CODE, DB_CAL)"),
        (lambda s: s.replace("release = 4", 'release = "four"'), "units[3].release"),
        (lambda s: s.replace('compress = "zlib"', 'compress = "lzma"'), "'lzma' is not offered"),
    ],
)  # fmt: skip
async def test_a_bad_spec_is_refused_naming_the_field_and_nothing_is_published(
    spec: Path, tmp_path: Path, change: object, message: str
) -> None:
    toml = spec / "F030.toml"
    assert callable(change)
    toml.write_text(change(toml.read_text()))
    code, _, err = await _build(spec, tmp_path / "repo", "--new-keys")
    assert code == 2
    assert message in err.replace("\n", "")
    assert "F030.toml" in err
    assert not (tmp_path / "repo" / "timestamp.json").exists()


async def test_a_malformed_hex_file_is_named_with_its_line(spec: Path, tmp_path: Path) -> None:
    hex_file = spec / "images" / "dme.hex"
    lines = hex_file.read_text().splitlines()
    lines[2] = lines[2][:-2] + ("00" if lines[2][-2:] != "00" else "01")  # bad checksum
    hex_file.write_text("\n".join(lines) + "\n")
    code, _, err = await _build(spec, tmp_path / "repo", "--new-keys")
    assert code == 2
    assert "dme.hex" in err
    assert "line 3" in err


async def test_missing_signing_keys_are_named_not_invented(spec: Path, tmp_path: Path) -> None:
    code, _, err = await _build(spec, tmp_path / "repo")
    assert code == 2
    assert "no signing key for root, targets, snapshot, timestamp, F030" in err
    assert "--new-keys" in err
    assert not (spec / "keys").exists()
