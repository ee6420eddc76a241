"""UDS constants and shared codecs: literal vectors from ISO 14229-1 and property tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecuworks.errors import ConfigError, NegativeResponse, ParseError
from ecuworks.wire.uds import (
    NEGATIVE_RESPONSE_SID,
    POSITIVE_RESPONSE_OFFSET,
    PROGRAMMING_SECURITY_KEY,
    PROGRAMMING_SECURITY_LEVEL,
    SUPPRESS_POSITIVE_RESPONSE,
    Did,
    NegativeResponseMessage,
    Nrc,
    ResetType,
    Routine,
    ServiceId,
    Session,
    decode_max_block_length,
    decode_memory_location,
    encode_memory_location,
    is_negative,
    is_response_pending,
    nrc_name,
    positive_sid,
)

# --- identifiers -----------------------------------------------------------------------


def test_service_ids_match_iso_14229_1() -> None:
    assert {s.name: s.value for s in ServiceId} == {
        "DIAGNOSTIC_SESSION_CONTROL": 0x10,
        "ECU_RESET": 0x11,
        "CLEAR_DIAGNOSTIC_INFORMATION": 0x14,
        "READ_DTC_INFORMATION": 0x19,
        "READ_DATA_BY_IDENTIFIER": 0x22,
        "READ_MEMORY_BY_ADDRESS": 0x23,
        "READ_SCALING_DATA_BY_IDENTIFIER": 0x24,
        "SECURITY_ACCESS": 0x27,
        "COMMUNICATION_CONTROL": 0x28,
        "AUTHENTICATION": 0x29,
        "READ_DATA_BY_PERIODIC_IDENTIFIER": 0x2A,
        "DYNAMICALLY_DEFINE_DATA_IDENTIFIER": 0x2C,
        "WRITE_DATA_BY_IDENTIFIER": 0x2E,
        "INPUT_OUTPUT_CONTROL_BY_IDENTIFIER": 0x2F,
        "ROUTINE_CONTROL": 0x31,
        "REQUEST_DOWNLOAD": 0x34,
        "REQUEST_UPLOAD": 0x35,
        "TRANSFER_DATA": 0x36,
        "REQUEST_TRANSFER_EXIT": 0x37,
        "REQUEST_FILE_TRANSFER": 0x38,
        "WRITE_MEMORY_BY_ADDRESS": 0x3D,
        "TESTER_PRESENT": 0x3E,
        "ACCESS_TIMING_PARAMETER": 0x83,
        "SECURED_DATA_TRANSMISSION": 0x84,
        "CONTROL_DTC_SETTING": 0x85,
        "RESPONSE_ON_EVENT": 0x86,
        "LINK_CONTROL": 0x87,
    }


def test_nrc_table_covers_annex_a1() -> None:
    expected = [
        *range(0x10, 0x15),
        0x21,
        0x22,
        *range(0x24, 0x27),
        0x31,
        *range(0x33, 0x3B),
        *range(0x50, 0x5E),
        *range(0x70, 0x74),
        0x78,
        0x7E,
        0x7F,
        *range(0x81, 0x8E),
        *range(0x8F, 0x95),
    ]
    assert sorted(code.value for code in Nrc) == expected
    assert Nrc.REQUEST_CORRECTLY_RECEIVED_RESPONSE_PENDING.value == 0x78


def test_framing_constants() -> None:
    assert (NEGATIVE_RESPONSE_SID, POSITIVE_RESPONSE_OFFSET, SUPPRESS_POSITIVE_RESPONSE) == (
        0x7F,
        0x40,
        0x80,
    )


def test_project_identifiers_match_domain_primer() -> None:
    assert (Session.DEFAULT, Session.PROGRAMMING, Session.EXTENDED, Session.CODING) == (
        1,
        2,
        3,
        0x41,
    )
    assert (Did.VIN, Did.SVK, Did.ACTIVE_SESSION) == (0xF190, 0xF101, 0xF186)
    assert (Did.PROGRAMMING_COUNTER, Did.PROGRAMMING_COUNTER_MAX) == (0x2502, 0x2503)
    assert (Routine.ERASE_MEMORY, Routine.CHECK_PROGRAMMING_DEPENDENCIES) == (0xFF00, 0xFF01)
    assert (Routine.CHECK_MEMORY, Routine.ENERGY_MODE) == (0x0202, 0x0F0C)
    assert (ResetType.HARD, ResetType.KEY_OFF_ON, ResetType.SOFT) == (1, 2, 3)
    assert (PROGRAMMING_SECURITY_LEVEL, PROGRAMMING_SECURITY_KEY) == (0x11, 0x12)


# --- NRCs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0x10, "general reject"),
        (0x22, "conditions not correct"),
        (0x31, "request out of range"),
        (0x35, "invalid key"),
        (0x36, "exceeded number of attempts"),
        (0x72, "general programming failure"),
        (0x73, "wrong block sequence counter"),
        (0x78, "response pending"),
        (0x7F, "service not supported in active session"),
        (0x54, "certificate verification failed: invalid format"),
        (0x93, "voltage too low"),
        (0x94, "resource temporarily not available"),
    ],
)
def test_nrc_names(code: int, name: str) -> None:
    assert nrc_name(code) == name


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0x00, "reserved (0x00)"),
        (0x15, "reserved (0x15)"),
        (0x8E, "reserved (0x8E)"),
        (0x95, "reserved (0x95)"),
        (0xEF, "reserved (0xEF)"),
        (0xF0, "vehicle-manufacturer specific (0xF0)"),
        (0xFE, "vehicle-manufacturer specific (0xFE)"),
        (0xFF, "reserved (0xFF)"),
        (0x100, "not an NRC (256)"),
        (-1, "not an NRC (-1)"),
    ],
)
def test_nrc_names_outside_the_table(code: int, name: str) -> None:
    assert nrc_name(code) == name


def test_every_listed_nrc_has_its_own_plain_name() -> None:
    names = [nrc_name(code) for code in Nrc]
    assert len(set(names)) == len(names)
    assert not any("reserved" in n or "_" in n or n != n.lower() for n in names)


@given(st.integers())
def test_nrc_name_never_raises(code: int) -> None:
    assert nrc_name(code)


@pytest.mark.parametrize(
    ("response", "pending"),
    [
        ("7f3178", True),
        ("7f3678", True),
        ("7f3122", False),
        ("7f31", False),
        ("7f317800", False),
        ("713178", False),
        ("", False),
    ],
)
def test_is_response_pending(response: str, pending: bool) -> None:
    assert is_response_pending(bytes.fromhex(response)) is pending


def test_is_negative_and_positive_sid() -> None:
    assert is_negative(bytes.fromhex("7f2231"))
    assert not is_negative(bytes.fromhex("62f190"))
    assert not is_negative(b"")
    assert positive_sid(ServiceId.REQUEST_DOWNLOAD) == 0x74
    assert positive_sid(ServiceId.CONTROL_DTC_SETTING) == 0xC5
    with pytest.raises(ConfigError, match="0xC0"):
        positive_sid(0xC0)


def test_negative_response_message_vector() -> None:
    message = NegativeResponseMessage.parse(bytes.fromhex("7f2735"))
    assert message == NegativeResponseMessage(service=0x27, nrc=0x35)
    assert message.name == "invalid key"
    assert message.encode() == bytes.fromhex("7f2735")
    error = message.error(target=0x12)
    assert isinstance(error, NegativeResponse)
    assert (error.service, error.nrc, error.target) == (0x27, 0x35, 0x12)
    assert "invalid key" in str(error)


@pytest.mark.parametrize("data", ["", "7f", "7f27", "7f273500", "672735"])
def test_negative_response_message_rejects_other_shapes(data: str) -> None:
    with pytest.raises(ParseError, match="7F <service> <nrc>") as info:
        NegativeResponseMessage.parse(bytes.fromhex(data))
    shown = bytes.fromhex(data).hex(" ") if data else "no bytes"
    assert shown in str(info.value)


def test_negative_response_message_rejects_values_beyond_a_byte() -> None:
    with pytest.raises(ConfigError):
        NegativeResponseMessage(service=0x100, nrc=0x10)


@given(st.integers(0, 255), st.integers(0, 255))
def test_negative_response_round_trip(service: int, nrc: int) -> None:
    message = NegativeResponseMessage(service=service, nrc=nrc)
    assert NegativeResponseMessage.parse(message.encode()) == message
    assert is_negative(message.encode())
    assert is_response_pending(message.encode()) is (nrc == 0x78)


@settings(max_examples=2000)
@given(st.binary(max_size=8))
def test_negative_response_parse_raises_only_parse_error(data: bytes) -> None:
    try:
        message = NegativeResponseMessage.parse(data)
    except ParseError:
        return
    assert message.encode() == data


# --- memory location (ALFID) -----------------------------------------------------------


def test_memory_location_minimal_widths() -> None:
    # 4-byte address, 3-byte size: ALFID 0x34.
    assert encode_memory_location(0x80000000, 0x800000) == bytes.fromhex("3480000000800000")
    assert encode_memory_location(0, 0) == bytes.fromhex("110000")


def test_memory_location_explicit_widths() -> None:
    assert encode_memory_location(
        0x80000000, 0x800000, address_bytes=4, size_bytes=4
    ) == bytes.fromhex("448000000000800000")
    assert encode_memory_location(0x1000, 0x10, address_bytes=3, size_bytes=2) == bytes.fromhex(
        "230010000010"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"address": -1, "size": 1}, "negative"),
        ({"address": 1, "size": -5}, "negative"),
        ({"address": 0x10000, "size": 1, "address_bytes": 2}, "does not fit"),
        ({"address": 1, "size": 1, "size_bytes": 0}, "1-15"),
        ({"address": 1, "size": 1, "address_bytes": 16}, "1-15"),
        ({"address": 1 << 120, "size": 1}, "more than 15"),
    ],
)
def test_memory_location_rejects_what_does_not_fit(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        encode_memory_location(**kwargs)


def test_decode_memory_location_reports_consumed_bytes() -> None:
    data = bytes.fromhex("3480000000800000") + b"\xaa\xbb"
    assert decode_memory_location(data) == (0x80000000, 0x800000, 8)


@pytest.mark.parametrize(
    ("data", "message"),
    [("", "empty"), ("40", "0x40"), ("04", "0x04"), ("4480", "needs 9 bytes, got 2")],
)
def test_decode_memory_location_errors(data: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        decode_memory_location(bytes.fromhex(data))


@given(
    st.integers(0, (1 << 64) - 1),
    st.integers(0, (1 << 64) - 1),
    st.one_of(st.none(), st.integers(8, 15)),
    st.one_of(st.none(), st.integers(8, 15)),
)
def test_memory_location_round_trip(
    address: int, size: int, address_bytes: int | None, size_bytes: int | None
) -> None:
    data = encode_memory_location(address, size, address_bytes=address_bytes, size_bytes=size_bytes)
    assert decode_memory_location(data) == (address, size, len(data))


@settings(max_examples=2000)
@given(st.binary(max_size=40))
def test_decode_memory_location_raises_only_parse_error(data: bytes) -> None:
    try:
        address, size, consumed = decode_memory_location(data)
    except ParseError:
        return
    assert 3 <= consumed <= len(data)
    assert address >= 0
    assert size >= 0


# --- RequestDownload positive response -------------------------------------------------


@pytest.mark.parametrize(
    ("response", "length"),
    [
        ("74200fff", 0x0FFF),
        ("7410ff", 0xFF),
        ("744000010002", 0x10002),
        ("7480" + "0000000000000003", 3),
        ("742f0800", 0x800),  # reserved low nibble ignored
    ],
)
def test_decode_max_block_length(response: str, length: int) -> None:
    assert decode_max_block_length(bytes.fromhex(response)) == length


@pytest.mark.parametrize(
    ("response", "message"),
    [
        ("", "74 LFI"),
        ("74", "74 LFI"),
        ("7f3431", "7f 34 31"),
        ("75200fff", "75 20 0f ff"),
        ("74000fff", "1-8 bytes, got 0"),
        ("7490" + "00" * 9, "1-8 bytes, got 9"),
        ("74200f", "must be 4 bytes, got 3"),
        ("74200fff00", "must be 4 bytes, got 5"),
        ("741002", "below 3"),
        ("74200000", "below 3"),
    ],
)
def test_decode_max_block_length_errors(response: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        decode_max_block_length(bytes.fromhex(response))


@given(st.integers(1, 8).flatmap(lambda n: st.tuples(st.just(n), st.integers(3, (1 << 8 * n) - 1))))
def test_max_block_length_round_trip(width_and_length: tuple[int, int]) -> None:
    width, length = width_and_length
    response = bytes((0x74, width << 4)) + length.to_bytes(width, "big")
    assert decode_max_block_length(response) == length


@settings(max_examples=2000)
@given(st.one_of(st.binary(max_size=12), st.binary(max_size=10).map(lambda b: b"\x74" + b)))
def test_decode_max_block_length_raises_only_parse_error(data: bytes) -> None:
    try:
        length = decode_max_block_length(data)
    except ParseError:
        return
    assert length >= 3
