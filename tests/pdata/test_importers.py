"""Importing flash images: Intel HEX, S-record, raw binary, and ODX-F in a PDX."""

from __future__ import annotations

import hashlib
import random
import tracemalloc
import zlib
from pathlib import Path

import bincopy
import pytest
from tests.pdata.odx_sample import ODX_F, write_pdx

from ecuworks.errors import ParseError
from ecuworks.pdata.importers import (
    FileSegment,
    ImportedImage,
    Segment,
    load_image,
    load_pdx,
)

# Three segments with gaps between them, as an ECU's flash layout would have.
LAYOUT = [(0x8000_0000, 50_000), (0x8001_0000, 20_000), (0x8002_4000, 33_333)]


@pytest.fixture
def image_bytes() -> list[tuple[int, bytes]]:
    rng = random.Random(4)
    return [(address, rng.randbytes(size)) for address, size in LAYOUT]


def _binfile(parts: list[tuple[int, bytes]]) -> bincopy.BinFile:
    binfile = bincopy.BinFile()
    for address, data in parts:
        binfile.add_binary(data, address=address)
    return binfile


def test_hex_and_srec_import_to_identical_segments(
    tmp_path: Path, image_bytes: list[tuple[int, bytes]]
) -> None:
    binfile = _binfile(image_bytes)
    (tmp_path / "app.hex").write_text(binfile.as_ihex())
    (tmp_path / "app.s37").write_text(binfile.as_srec())

    from_hex = load_image(tmp_path / "app.hex")
    from_srec = load_image(tmp_path / "app.s37")

    expected = tuple(Segment(address=a, data=d) for a, d in image_bytes)
    assert from_hex.segments == expected
    assert from_srec.segments == expected
    concatenated = b"".join(d for _, d in image_bytes)
    assert from_hex.sha256() == from_srec.sha256() == hashlib.sha256(concatenated).hexdigest()
    assert from_hex.crc32() == zlib.crc32(concatenated)
    assert from_hex.total_size == len(concatenated)
    assert from_hex.source == str(tmp_path / "app.hex")


def test_format_is_detected_from_content_when_the_name_says_nothing(
    tmp_path: Path, image_bytes: list[tuple[int, bytes]]
) -> None:
    binfile = _binfile(image_bytes)
    (tmp_path / "a.dat").write_text(binfile.as_ihex())
    (tmp_path / "b.dat").write_text(binfile.as_srec())
    assert load_image(tmp_path / "a.dat").segments == load_image(tmp_path / "b.dat").segments


def test_records_out_of_order_are_sorted_and_adjacent_ones_merged(tmp_path: Path) -> None:
    lines = bincopy.BinFile()
    lines.add_binary(b"\x01" * 16, address=0x1010)
    first = lines.as_ihex().splitlines()
    lines = bincopy.BinFile()
    lines.add_binary(b"\x02" * 16, address=0x1000)
    second = lines.as_ihex().splitlines()
    # data records of the higher address first, then the lower one, each with its EOF dropped
    (tmp_path / "x.hex").write_text("\n".join(first[:-1] + second) + "\n")

    image = load_image(tmp_path / "x.hex")

    assert image.segments == (Segment(address=0x1000, data=b"\x02" * 16 + b"\x01" * 16),)


def test_raw_binary_sits_at_the_base_address(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10
    (tmp_path / "app.bin").write_bytes(data)

    image = load_image(tmp_path / "app.bin", base_address=0x0800_0000)

    (segment,) = image.segments
    assert isinstance(segment, FileSegment)
    assert (segment.address, segment.length, segment.end) == (0x0800_0000, 2560, 0x0800_0A00)
    assert b"".join(segment.iter_chunks(1000)) == data
    assert [len(c) for c in segment.iter_chunks(1000)] == [1000, 1000, 560]
    assert image.sha256() == hashlib.sha256(data).hexdigest()


def test_explicit_format_overrides_the_extension(tmp_path: Path) -> None:
    (tmp_path / "app.hex").write_bytes(b":not really hex")
    image = load_image(tmp_path / "app.hex", format="binary", base_address=4)
    assert image.segments[0].address == 4
    assert image.total_size == 15


def test_bad_checksum_names_file_and_line(tmp_path: Path) -> None:
    binfile = bincopy.BinFile()
    binfile.add_binary(bytes(100), address=0x2000)
    lines = binfile.as_ihex().splitlines()
    lines[2] = lines[2][:-2] + ("00" if lines[2][-2:] != "00" else "01")
    path = tmp_path / "broken.hex"
    path.write_text("\n".join(lines) + "\n")

    with pytest.raises(ParseError, match=r"broken\.hex, line 3: .*crc"):
        load_image(path)


def test_overlapping_records_are_refused(tmp_path: Path) -> None:
    binfile = bincopy.BinFile()
    binfile.add_binary(bytes(32), address=0x3000)
    lines = binfile.as_srec().splitlines()
    data_records = [line for line in lines if line[:2] in ("S1", "S2", "S3")]
    path = tmp_path / "twice.srec"
    path.write_text("\n".join([*lines[:-1], data_records[0], lines[-1]]) + "\n")

    with pytest.raises(ParseError, match=rf"twice\.srec, line {len(lines)}: records overlap"):
        load_image(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.hex", b":00000001FF\n", "no data records"),
        ("binary.hex", b":\xff\xfe", "not Intel HEX text"),
        ("what.dat", b"hello", "cannot tell the image format"),
        ("empty.bin", b"", "empty"),
    ],
)
def test_unusable_files_are_refused(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ParseError, match=message):
        load_image(path)


def test_missing_file_is_a_parse_error(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"nothere\.hex: cannot read"):
        load_image(tmp_path / "nothere.hex")


def test_overlapping_segments_cannot_form_an_image() -> None:
    with pytest.raises(ParseError, match="overlaps"):
        ImportedImage(
            segments=(Segment(address=0, data=b"ab"), Segment(address=1, data=b"c")),
            source="test",
        )


def test_big_raw_file_streams_without_being_loaded(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    size = 64 * 1024 * 1024
    with path.open("wb") as f:
        f.truncate(size)  # sparse: no disk space, no memory
        f.seek(size - 4)
        f.write(b"\xde\xad\xbe\xef")

    tracemalloc.start()
    try:
        image = load_image(path, base_address=0x9000_0000)
        chunks = 0
        last = b""
        for chunk in image.iter_chunks(1024 * 1024):
            chunks += 1
            last = chunk
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert image.total_size == size
    assert chunks == 64
    assert last.endswith(b"\xde\xad\xbe\xef")
    assert peak < 8 * 1024 * 1024


# --- ODX-F in a PDX -----------------------------------------------------------------------


def test_odx_f_pdx_imports_with_segments_and_addresses(
    tmp_path: Path, image_bytes: list[tuple[int, bytes]]
) -> None:
    hex_text = _binfile(image_bytes).as_ihex().encode()
    pdx = tmp_path / "dme.pdx"
    write_pdx(pdx, ODX_F, {"dme_code.hex": hex_text})

    code, cal = load_pdx(pdx)

    assert (code.name, code.flash, code.ecu_mem, code.session) == (
        "DB_CODE",
        "FL_DME",
        "EM_DME",
        "SE_SWFL",
    )
    assert (code.data_type, code.logical_block_index) == ("CODE", 1)
    # the ODX SEGMENTS pick the first two of the three HEX segments
    assert code.segments == tuple(Segment(address=a, data=d) for a, d in image_bytes[:2])
    assert (
        code.image().sha256() == hashlib.sha256(image_bytes[0][1] + image_bytes[1][1]).hexdigest()
    )

    assert (cal.name, cal.data_type, cal.logical_block_index) == ("DB_CAL", "DATA", 2)
    assert cal.segments == (
        Segment(address=0xA000_0000, data=bytes.fromhex("CAFEBABE0102")),
        Segment(address=0xA000_0100, data=bytes.fromhex("FFEE")),
    )


def test_pdx_missing_data_file_is_refused(tmp_path: Path) -> None:
    pdx = tmp_path / "nodata.pdx"
    write_pdx(pdx, ODX_F, {})
    with pytest.raises(ParseError, match=r"nodata\.pdx: FL_DME/EM_DME/DB_CODE.*dme_code\.hex"):
        load_pdx(pdx)


def test_pdx_segment_beyond_the_data_is_refused(tmp_path: Path) -> None:
    odx_f = ODX_F.replace(
        "<UNCOMPRESSED-SIZE>2</UNCOMPRESSED-SIZE>", "<UNCOMPRESSED-SIZE>3</UNCOMPRESSED-SIZE>"
    )
    pdx = tmp_path / "short.pdx"
    code = _binfile([(0x8000_0000, bytes(0x14E20))]).as_ihex().encode()
    write_pdx(pdx, odx_f, {"dme_code.hex": code})
    with pytest.raises(ParseError, match=r"DB_CAL.*SG_CAL_1: needs 3 bytes"):
        load_pdx(pdx)


def test_not_a_pdx_is_a_parse_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.pdx"
    path.write_bytes(b"not a zip")
    with pytest.raises(ParseError, match=r"junk\.pdx: not a readable PDX"):
        load_pdx(path)


def test_pdx_srec_without_segments_keeps_the_records_addresses(
    tmp_path: Path, image_bytes: list[tuple[int, bytes]]
) -> None:
    start = ODX_F.index("<SEGMENTS>")
    odx_f = ODX_F[:start] + ODX_F[ODX_F.index("</SEGMENTS>") + len("</SEGMENTS>") :]
    odx_f = odx_f.replace('"INTEL-HEX"', '"MOTOROLA-S"').replace("dme_code.hex", "dme.s37")
    pdx = tmp_path / "srec.pdx"
    write_pdx(pdx, odx_f, {"dme.s37": _binfile(image_bytes).as_srec().encode()})

    code, _ = load_pdx(pdx)

    assert code.segments == tuple(Segment(address=a, data=d) for a, d in image_bytes)


def test_pdx_compressed_data_is_refused(tmp_path: Path) -> None:
    odx_f = ODX_F.replace(
        '<DATAFORMAT SELECTION="BINARY"/>',
        '<DATAFORMAT SELECTION="BINARY"/>'
        '<ENCRYPT-COMPRESS-METHOD TYPE="A_UINT32">1</ENCRYPT-COMPRESS-METHOD>',
    )
    pdx = tmp_path / "packed.pdx"
    code = _binfile([(0x8000_0000, bytes(0x14E20))]).as_ihex().encode()
    write_pdx(pdx, odx_f, {"dme_code.hex": code})
    with pytest.raises(ParseError, match=r"FD_CAL.*encrypted or compressed"):
        load_pdx(pdx)
