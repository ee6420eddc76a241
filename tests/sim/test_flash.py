"""One download into one region: sizes, compression, CRC and image verification."""

from __future__ import annotations

import itertools
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecuworks.sim.flash import Download, DownloadError
from ecuworks.sim.state import RegionState
from ecuworks.wire.sgbm import SgbmId
from ecuworks.wire.uds import Nrc
from ecuworks.wire.unit_image import build_image

UNIT = SgbmId.parse("SWFL-00001281-002.000.000")
REGION_AT, REGION_SIZE = 0x0001_0000, 0x4000


def blank_region() -> RegionState:
    return RegionState(
        process_class="SWFL", address=REGION_AT, size=REGION_SIZE, unit=None, valid=False
    )


def image(length: int = 5000) -> bytes:
    return build_image(UNIT, bytes(i * 13 & 0xFF for i in range(length)))


def feed_all(download: Download, data: bytes, block: int = 1000) -> int:
    return sum(download.feed(data[i : i + block]) for i in range(0, len(data), block))


def test_raw_download_counts_crcs_and_verifies() -> None:
    data = image()
    download = Download(blank_region(), REGION_AT, len(data), 0x00)
    assert not download.complete
    assert feed_all(download, data) == len(data)
    assert download.complete
    assert download.transferred == download.written == len(data)
    assert download.crc32 == zlib.crc32(data)
    result = download.result
    assert (result.unit, result.valid, result.problem) == (str(UNIT), True, None)


def test_compressed_download_announces_the_uncompressed_size() -> None:
    data = image(12_000)
    wire = zlib.compress(data)
    download = Download(blank_region(), REGION_AT, len(data), 0x10)
    assert feed_all(download, wire, block=64) == len(data)
    assert download.complete
    assert download.transferred == len(wire)
    assert download.written == len(data)
    assert download.crc32 == zlib.crc32(wire)
    assert download.result.valid


def test_compressed_stream_must_end_to_be_complete() -> None:
    data = image()
    wire = zlib.compress(data)
    download = Download(blank_region(), REGION_AT, len(data), 0x10)
    download.feed(wire[:-4])  # everything but the Adler-32 trailer
    assert download.written == len(data)
    assert not download.complete
    download.feed(wire[-4:])
    assert download.complete


def test_incomplete_download_is_not_valid_but_names_its_unit() -> None:
    data = image()
    download = Download(blank_region(), REGION_AT, len(data), 0x00)
    download.feed(data[:1000])
    result = download.result
    assert result.unit == str(UNIT)
    assert not result.valid
    assert "incomplete" in (result.problem or "")


def test_tampered_payload_is_not_valid() -> None:
    data = bytearray(image())
    data[-1] ^= 0xFF
    download = Download(blank_region(), REGION_AT, len(data), 0x00)
    feed_all(download, bytes(data))
    result = download.result
    assert result.unit == str(UNIT)
    assert not result.valid
    assert "SHA-256" in (result.problem or "")


def test_no_header_means_no_unit() -> None:
    data = b"\x00" * 200
    download = Download(blank_region(), REGION_AT, len(data), 0x00)
    download.feed(data)
    assert download.result.unit is None
    assert not download.result.valid


def test_unit_of_another_class_is_not_valid_in_the_region() -> None:
    data = build_image(SgbmId.parse("BTLD-00001261-001.000.000"), b"boot")
    download = Download(blank_region(), REGION_AT, len(data), 0x00)
    download.feed(data)
    assert download.complete
    assert not download.result.valid
    assert "no SWFL" in (download.result.problem or "")


def test_image_shorter_than_announced_is_incomplete_padded_is_invalid() -> None:
    data = image(100)
    padded = data + bytes(36)
    download = Download(blank_region(), REGION_AT, len(padded), 0x00)
    download.feed(padded)
    assert download.complete
    assert not download.result.valid
    assert "too long" in (download.result.problem or "")


@pytest.mark.parametrize(
    ("address", "size", "data_format"),
    [
        pytest.param(REGION_AT + 0x1000, 100, 0x00, id="not the region start"),
        pytest.param(REGION_AT, 0, 0x00, id="empty"),
        pytest.param(REGION_AT, REGION_SIZE + 1, 0x00, id="larger than the region"),
        pytest.param(REGION_AT, 100, 0x01, id="encrypted"),
        pytest.param(REGION_AT, 100, 0x20, id="another compression"),
    ],
)
def test_refused_requests_answer_request_out_of_range(
    address: int, size: int, data_format: int
) -> None:
    with pytest.raises(DownloadError) as caught:
        Download(blank_region(), address, size, data_format)
    assert caught.value.nrc == Nrc.REQUEST_OUT_OF_RANGE


def test_raw_data_beyond_the_size_is_suspended() -> None:
    download = Download(blank_region(), REGION_AT, 100, 0x00)
    download.feed(bytes(60))
    with pytest.raises(DownloadError) as caught:
        download.feed(bytes(41))
    assert caught.value.nrc == Nrc.TRANSFER_DATA_SUSPENDED
    assert download.written == 60  # the refused block was not written


def test_compressed_data_inflating_beyond_the_size_is_suspended() -> None:
    bomb = zlib.compress(bytes(10_000_000))  # ~10 kB that inflates to 10 MB
    download = Download(blank_region(), REGION_AT, 1000, 0x10)
    with pytest.raises(DownloadError) as caught:
        download.feed(bomb)
    assert caught.value.nrc == Nrc.TRANSFER_DATA_SUSPENDED


def test_data_after_the_end_of_the_compressed_stream_is_suspended() -> None:
    data = image(100)
    download = Download(blank_region(), REGION_AT, len(data), 0x10)
    download.feed(zlib.compress(data))
    with pytest.raises(DownloadError) as caught:
        download.feed(b"\x00")
    assert caught.value.nrc == Nrc.TRANSFER_DATA_SUSPENDED


def test_trailing_garbage_in_the_same_block_is_suspended() -> None:
    data = image(100)
    download = Download(blank_region(), REGION_AT, len(data), 0x10)
    with pytest.raises(DownloadError) as caught:
        download.feed(zlib.compress(data) + b"junk")
    assert caught.value.nrc == Nrc.TRANSFER_DATA_SUSPENDED


def test_corrupt_compressed_data_is_a_programming_failure() -> None:
    download = Download(blank_region(), REGION_AT, 1000, 0x10)
    with pytest.raises(DownloadError) as caught:
        download.feed(b"\xff" * 50)
    assert caught.value.nrc == Nrc.GENERAL_PROGRAMMING_FAILURE


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 6000), max_size=12),
    compressed=st.booleans(),
)
def test_any_block_boundaries_give_the_same_result(cuts: list[int], compressed: bool) -> None:
    data = image()
    wire = zlib.compress(data) if compressed else data
    bounds = sorted({0, len(wire), *(c for c in cuts if c < len(wire))})
    download = Download(blank_region(), REGION_AT, len(data), 0x10 if compressed else 0x00)
    for start, end in itertools.pairwise(bounds):
        download.feed(wire[start:end])
    assert download.complete
    assert download.crc32 == zlib.crc32(wire)
    assert download.result.valid
