"""The FSC record and status codecs: literal vectors, round trips, hostile bytes."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecuworks.errors import ConfigError, ParseError
from ecuworks.wire.fsc import (
    RECORD_LENGTH,
    SIGNED_LENGTH,
    Fsc,
    FscStatus,
    FscStatusEntry,
    decode_records,
    decode_status,
    encode_status,
)
from ecuworks.wire.uds import Did

SIGNATURE = bytes(range(64))
CODE = Fsc(
    vin="WBA8E9C50GK123456",
    app_id=0x0041,
    upgrade_index=1,
    issued=1_436_918_400,  # 2015-07-15 00:00 UTC
    signature=SIGNATURE,
)
RECORD = bytes.fromhex(
    "46534331"  # FSC1
    "574241384539433530474b313233343536"  # WBA8E9C50GK123456
    "0041"  # application id
    "0001"  # upgrade index
    "55a5a280"  # issued
) + bytes(range(64))

codes = st.builds(
    Fsc,
    vin=st.text(alphabet=st.characters(max_codepoint=0x7F), min_size=17, max_size=17),
    app_id=st.integers(0, 0xFFFF),
    upgrade_index=st.integers(0, 0xFFFF),
    issued=st.integers(0, 0xFFFF_FFFF),
    signature=st.binary(min_size=64, max_size=64),
)
entries = st.builds(
    FscStatusEntry,
    app_id=st.integers(0, 0xFFFF),
    upgrade_index=st.integers(0, 0xFFFF),
    status=st.sampled_from(FscStatus),
)


def test_record_vector() -> None:
    assert CODE.encode() == RECORD
    assert len(RECORD) == RECORD_LENGTH == 93
    assert CODE.signed_bytes() == RECORD[:SIGNED_LENGTH]
    assert Fsc.decode(RECORD) == CODE


def test_status_vector() -> None:
    record = bytes.fromhex("0041 0001 00 0061 0002 01 00b0 0001 02")
    decoded = [
        FscStatusEntry(app_id=0x41, upgrade_index=1, status=FscStatus.ACCEPTED),
        FscStatusEntry(app_id=0x61, upgrade_index=2, status=FscStatus.REJECTED),
        FscStatusEntry(app_id=0xB0, upgrade_index=1, status=FscStatus.INVALID),
    ]
    assert decode_status(record) == decoded
    assert encode_status(decoded) == record
    assert decode_status(b"") == []


def test_the_dids_are_distinct_members() -> None:
    assert (Did.FSC_RECORDS, Did.FSC_STATUS) == (0x1041, 0x1042)
    assert len({int(d) for d in Did}) == len(Did)


def test_records_back_to_back() -> None:
    other = Fsc(
        vin="WBA5R7C08MFK12345", app_id=0x61, upgrade_index=2, issued=1, signature=bytes(64)
    )
    assert decode_records(RECORD + other.encode()) == [CODE, other]
    assert decode_records(b"") == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (RECORD[:-1], "93 bytes, got 92"),
        (RECORD + b"\x00", "93 bytes, got 94"),
        (b"FSC2" + RECORD[4:], "no enabling code"),
        (RECORD[:4] + b"\xc3\xa9" + RECORD[6:], "VIN is not ASCII"),
        (b"", "got 0"),
    ],
)
def test_bad_records_say_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        Fsc.decode(data)


def test_bad_status_records_say_what_is_wrong() -> None:
    with pytest.raises(ParseError, match="5 bytes each"):
        decode_status(b"\x00\x41\x00\x01")
    with pytest.raises(ParseError, match="status 0x07 of application 0x0041 is unknown"):
        decode_status(bytes.fromhex("0041 0001 07"))
    with pytest.raises(ParseError, match="93-byte records"):
        decode_records(RECORD[:50])


@pytest.mark.parametrize(
    "changes",
    [
        {"vin": "WBA8E9C50GK12345"},
        {"vin": "WBA8E9C50GK12345\u00e9"},
        {"app_id": 0x10000},
        {"upgrade_index": -1},
        {"issued": 1 << 32},
        {"signature": bytes(63)},
    ],
)
def test_values_that_do_not_fit_are_refused(changes: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "vin": CODE.vin,
        "app_id": CODE.app_id,
        "upgrade_index": CODE.upgrade_index,
        "issued": CODE.issued,
        "signature": CODE.signature,
    }
    with pytest.raises(ConfigError):
        Fsc(**fields | changes)  # type: ignore[arg-type]


@given(codes)
def test_record_round_trip(code: Fsc) -> None:
    assert Fsc.decode(code.encode()) == code
    assert len(code.encode()) == RECORD_LENGTH


@given(st.lists(entries, max_size=20))
def test_status_round_trip(items: list[FscStatusEntry]) -> None:
    assert decode_status(encode_status(items)) == items


@settings(max_examples=2000)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_parse_error(data: bytes) -> None:
    for decode in (Fsc.decode, decode_records, decode_status):
        with contextlib.suppress(ParseError):
            decode(data)


def test_mutated_records_raise_only_parse_error() -> None:
    rng = random.Random(1041)
    for _ in range(20_000):
        data = bytearray(RECORD + RECORD)
        for _ in range(rng.randint(1, 4)):
            where = rng.randrange(len(data))
            if rng.random() < 0.7:
                data[where] = rng.randrange(256)
            else:
                del data[where:]
                if not data:
                    break
        for decode in (Fsc.decode, decode_records, decode_status):
            with contextlib.suppress(ParseError):
                decode(bytes(data))
