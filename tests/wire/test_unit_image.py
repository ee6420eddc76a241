"""Unit image header (EWU1): literal vector, round trips, streaming verification."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecuworks.errors import ConfigError, ParseError
from ecuworks.wire.sgbm import ProcessClass, SgbmId
from ecuworks.wire.unit_image import HEADER_SIZE, ImageVerifier, UnitHeader, build_image

SWFL = SgbmId.parse("SWFL-0000ABCD-001.002.003")
# sha256(b"abc"), FIPS 180-2 appendix B.1
ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
ABC_HEADER = bytes.fromhex(
    "45575531"  # EWU1
    "08" + "0000ABCD" + "010203"  # SWFL, unit id, version 1.2.3
    "00000003" + ABC_SHA256 + "00" * 16
)

sgbm_ids = st.builds(
    SgbmId,
    process_class=st.sampled_from(ProcessClass),
    unit_id=st.integers(0, 0xFFFF_FFFF),
    main=st.integers(0, 255),
    sub=st.integers(0, 255),
    patch=st.integers(0, 255),
)


def chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    """Cut ``data`` into pieces of the given sizes (cycled), the last one taking the rest."""
    pieces, position, i = [], 0, 0
    while position < len(data):
        size = sizes[i % len(sizes)] if sizes else len(data)
        pieces.append(data[position : position + size])
        position += size
        i += 1
    return pieces


def verify(image: bytes, sizes: list[int]) -> ImageVerifier:
    verifier = ImageVerifier()
    for piece in chunks(image, sizes):
        verifier.feed(piece)
    return verifier


def test_header_vector() -> None:
    header = UnitHeader.for_payload(SWFL, b"abc")
    assert header.encode() == ABC_HEADER
    assert len(ABC_HEADER) == HEADER_SIZE
    assert UnitHeader.parse(ABC_HEADER) == header
    assert header.payload_sha256.hex() == ABC_SHA256
    assert header.image_length == 67
    assert build_image(SWFL, b"abc") == ABC_HEADER + b"abc"


def test_parse_reads_the_header_of_a_whole_image() -> None:
    image = build_image(SWFL, b"payload")
    assert UnitHeader.parse(image).sgbm == SWFL


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (ABC_HEADER[:63], "needs 64 bytes, got 63"),
        (b"", "needs 64 bytes, got 0"),
        (b"EWU2" + ABC_HEADER[4:], "magic is 45575532, expected 45575531"),
        (ABC_HEADER[:4] + b"\x0e" + ABC_HEADER[5:], "unknown process class code 14"),
        (ABC_HEADER[:63] + b"\x01", "bytes 48-63 must be zero, got 0{30}01"),
    ],
)
def test_parse_errors_say_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        UnitHeader.parse(data)


def test_header_values_that_cannot_be_encoded_are_refused() -> None:
    with pytest.raises(ConfigError, match="32-byte SHA-256"):
        UnitHeader(sgbm=SWFL, payload_length=3, payload_sha256=b"\x00" * 31)
    with pytest.raises(ConfigError, match="fit in 32 bits"):
        UnitHeader(sgbm=SWFL, payload_length=1 << 32, payload_sha256=bytes(32))


@given(
    sgbm=sgbm_ids, length=st.integers(0, 0xFFFF_FFFF), digest=st.binary(min_size=32, max_size=32)
)
def test_header_round_trip(sgbm: SgbmId, length: int, digest: bytes) -> None:
    header = UnitHeader(sgbm=sgbm, payload_length=length, payload_sha256=digest)
    encoded = header.encode()
    assert len(encoded) == HEADER_SIZE
    assert UnitHeader.parse(encoded) == header


@given(st.binary(max_size=200))
def test_parse_of_arbitrary_bytes_raises_only_parse_error(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        UnitHeader.parse(data)


@given(
    sgbm=sgbm_ids,
    payload=st.binary(max_size=600),
    sizes=st.lists(st.integers(1, 100), max_size=8),
)
def test_chunked_verification_equals_one_shot(
    sgbm: SgbmId, payload: bytes, sizes: list[int]
) -> None:
    image = build_image(sgbm, payload)
    one_shot, chunked = verify(image, []), verify(image, sizes)
    for verifier in (one_shot, chunked):
        assert verifier.valid
        assert verifier.complete
        assert verifier.problem is None
        assert verifier.header == UnitHeader.parse(image)
        assert verifier.received == len(image)
        assert verifier.payload_received == len(payload)


@given(payload=st.binary(min_size=1, max_size=300), data=st.data())
def test_a_flipped_payload_bit_is_never_valid(payload: bytes, data: st.DataObject) -> None:
    image = bytearray(build_image(SWFL, payload))
    position = data.draw(st.integers(HEADER_SIZE, len(image) - 1))
    image[position] ^= 1 << data.draw(st.integers(0, 7))
    verifier = verify(bytes(image), [7])
    assert verifier.complete
    assert not verifier.valid
    assert verifier.problem is not None
    assert "tampered" in verifier.problem


def test_a_header_still_arriving_is_not_yet_known() -> None:
    verifier = ImageVerifier()
    verifier.feed(ABC_HEADER[:40])
    assert verifier.header is None
    assert not verifier.complete
    assert not verifier.valid
    assert verifier.problem == "unit image incomplete: 40 of 64 header bytes"
    verifier.feed(ABC_HEADER[40:] + b"ab")
    assert verifier.header is not None
    assert not verifier.complete
    assert verifier.problem == "unit SWFL-0000ABCD-001.002.003 incomplete: 2 of 3 payload bytes"
    verifier.feed(b"c")
    assert verifier.valid


def test_extra_bytes_after_the_payload_make_the_image_invalid() -> None:
    verifier = verify(build_image(SWFL, b"abc") + b"d", [])
    assert verifier.complete
    assert not verifier.valid
    assert verifier.problem is not None
    assert "announces 3 payload bytes, 4 arrived" in verifier.problem


def test_a_bad_header_is_recorded_not_raised() -> None:
    verifier = verify(b"MZ\x90\x00" + bytes(200), [10])
    assert verifier.header is None
    assert isinstance(verifier.header_error, ParseError)
    assert not verifier.complete
    assert not verifier.valid
    assert verifier.problem is not None
    assert "no ecuworks unit image" in verifier.problem


def test_a_large_image_is_verified_without_being_held() -> None:
    # 8 MiB streamed in 4 KiB blocks, as TransferData brings it
    block = bytes(range(256)) * 16
    count = 2048
    digest = hashlib.sha256()
    for _ in range(count):
        digest.update(block)
    header = UnitHeader(
        sgbm=SWFL, payload_length=len(block) * count, payload_sha256=digest.digest()
    )
    verifier = ImageVerifier()
    verifier.feed(header.encode())
    for _ in range(count):
        verifier.feed(block)
    assert verifier.valid
    assert verifier.header == header
