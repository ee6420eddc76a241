"""SGBM-ID and SVK codecs: literal vectors, error messages and property tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecuworks.errors import ConfigError, ParseError
from ecuworks.wire.sgbm import ProcessClass, SgbmId, encode_svk, parse_svk

sgbm_ids = st.builds(
    SgbmId,
    process_class=st.sampled_from(ProcessClass),
    unit_id=st.integers(0, 0xFFFF_FFFF),
    main=st.integers(0, 255),
    sub=st.integers(0, 255),
    patch=st.integers(0, 255),
)
_VALID_SVK = bytes.fromhex("03" + "0100000010010000" + "0600000011010000" + "080000ABCD010203")


def test_process_class_codes_match_domain_primer() -> None:
    assert {c.name: c.value for c in ProcessClass} == {
        "HWEL": 1,
        "HWAP": 2,
        "HWFR": 3,
        "GWTB": 4,
        "CAFD": 5,
        "BTLD": 6,
        "FLSL": 7,
        "SWFL": 8,
        "SWFF": 9,
        "SWPF": 10,
        "ONPS": 11,
        "IBAD": 12,
        "SWFK": 13,
        "FAFP": 15,
    }


def test_parse_text_and_encode_binary_vector() -> None:
    unit = SgbmId.parse("SWFL-0000ABCD-001.002.003")
    assert unit == SgbmId(process_class=ProcessClass.SWFL, unit_id=0xABCD, main=1, sub=2, patch=3)
    assert unit.encode() == bytes.fromhex("080000ABCD010203")
    assert SgbmId.decode(bytes.fromhex("0600001234FF0000")) == SgbmId.parse(
        "BTLD-00001234-255.000.000"
    )
    assert unit.version == (1, 2, 3)


def test_lower_case_is_accepted_and_printed_upper_case() -> None:
    unit = SgbmId.parse("cafd-deadbeef-010.000.099")
    assert str(unit) == "CAFD-DEADBEEF-010.000.099"


def test_ordering_groups_one_unit_and_sorts_versions() -> None:
    texts = [
        "SWFL-0000ABCD-002.000.000",
        "BTLD-00000001-009.000.000",
        "SWFL-0000ABCD-001.010.000",
        "SWFL-0000ABCD-001.002.003",
    ]
    ordered = sorted(SgbmId.parse(t) for t in texts)
    assert [str(u) for u in ordered] == [
        "BTLD-00000001-009.000.000",
        "SWFL-0000ABCD-001.002.003",
        "SWFL-0000ABCD-001.010.000",
        "SWFL-0000ABCD-002.000.000",
    ]


def test_same_unit_ignores_version_only() -> None:
    a = SgbmId.parse("SWFL-0000ABCD-001.002.003")
    assert a.same_unit(SgbmId.parse("SWFL-0000ABCD-004.000.000"))
    assert not a.same_unit(SgbmId.parse("SWFL-0000ABCE-001.002.003"))
    assert not a.same_unit(SgbmId.parse("CAFD-0000ABCD-001.002.003"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SWFL-ABC-1.2.3", "unit id must be 8 hex digits, as in SWFL-0000ABCD-001.002.003"),
        ("SWFL-0000ABCG-001.002.003", "unit id must be 8 hex digits"),
        ("XXXX-0000ABCD-001.002.003", "unknown process class 'XXXX' (known: HWEL"),
        ("SWFL-0000ABCD-1.2.3", "version must be three 3-digit numbers"),
        ("SWFL-0000ABCD-001.256.003", "version parts must be 000-255"),
        ("SWFL-0000ABCD-001.002.003 ", "version must be"),
        ("SWFL_0000ABCD_001.002.003", "expected CLASS-XXXXXXXX-MMM.mmm.ppp"),
        ("SWFL-0000ABCD-001.002.003-X", "expected CLASS-XXXXXXXX-MMM.mmm.ppp"),
        # non-ASCII: a long s upper()s to S, Arabic-Indic digits are digits to int()
        ("\u017fwfl-0000ABCD-001.002.003", "expected CLASS"),
        ("SWFL-0000ABCD-001.002.\u0663\u0663\u0663", "expected CLASS"),
        ("", "expected CLASS"),
    ],
)
def test_parse_errors_name_the_input_and_the_expected_shape(text: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        SgbmId.parse(text)
    assert message in str(info.value)
    assert repr(text) in str(info.value)


def test_decode_errors() -> None:
    with pytest.raises(ParseError, match="8 bytes, got 7"):
        SgbmId.decode(bytes(7))
    with pytest.raises(ParseError, match="unknown process class code 14"):
        SgbmId.decode(bytes.fromhex("0E0000ABCD010203"))


def test_constructor_rejects_values_that_do_not_fit() -> None:
    with pytest.raises(ConfigError):
        SgbmId(process_class=ProcessClass.SWFL, unit_id=1 << 32, main=0, sub=0, patch=0)
    with pytest.raises(ConfigError):
        SgbmId(process_class=ProcessClass.SWFL, unit_id=0, main=0, sub=256, patch=0)


@given(sgbm_ids)
def test_text_round_trip(unit: SgbmId) -> None:
    assert SgbmId.parse(str(unit)) == unit


@given(sgbm_ids)
def test_binary_round_trip(unit: SgbmId) -> None:
    data = unit.encode()
    assert len(data) == 8
    assert SgbmId.decode(data) == unit


@settings(max_examples=2000)
@given(st.text(max_size=40))
def test_parse_raises_only_parse_error(text: str) -> None:
    try:
        unit = SgbmId.parse(text)
    except ParseError:
        return
    assert str(unit) == text.upper()


@settings(max_examples=2000)
@given(st.text(alphabet="SWFLCAFDBTLD0123456789abcdefABCDEF-.", max_size=30))
def test_parse_near_misses_raise_only_parse_error(text: str) -> None:
    try:
        unit = SgbmId.parse(text)
    except ParseError:
        return
    assert str(unit) == text.upper()


@settings(max_examples=2000)
@given(st.binary(max_size=10))
def test_decode_raises_only_parse_error(data: bytes) -> None:
    try:
        unit = SgbmId.decode(data)
    except ParseError:
        return
    assert unit.encode() == data


# --- SVK -------------------------------------------------------------------------------


def test_svk_vector() -> None:
    units = [
        SgbmId.parse("HWEL-00000010-001.000.000"),
        SgbmId.parse("SWFL-0000ABCD-001.002.003"),
    ]
    data = encode_svk(units)
    assert data == bytes.fromhex("02" + "0100000010010000" + "080000ABCD010203")
    assert parse_svk(data) == units
    assert parse_svk(b"\x00") == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("", "SVK is empty"),
        ("02080000ABCD010203", "2 unit(s), which needs 17 bytes, got 9"),
        ("01080000ABCD01020300", "1 unit(s), which needs 9 bytes, got 10"),
        ("02080000ABCD010203EE0000ABCD010203", "SVK entry 2 of 2: "),
    ],
)
def test_svk_errors(data: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_svk(bytes.fromhex(data))
    assert message in str(info.value)


def test_encode_svk_refuses_more_than_255_units() -> None:
    unit = SgbmId.parse("SWFL-0000ABCD-001.002.003")
    with pytest.raises(ConfigError, match="at most 255"):
        encode_svk([unit] * 256)


@given(st.lists(sgbm_ids, max_size=40))
def test_svk_round_trip(units: list[SgbmId]) -> None:
    assert parse_svk(encode_svk(units)) == units


@settings(max_examples=2000)
@given(
    st.one_of(
        st.binary(max_size=40),
        # a valid SVK cut short, or with bytes appended
        st.integers(0, len(_VALID_SVK)).map(lambda n: _VALID_SVK[:n]),
        st.binary(min_size=1, max_size=9).map(lambda tail: _VALID_SVK + tail),
    )
)
def test_parse_svk_raises_only_parse_error(data: bytes) -> None:
    try:
        units = parse_svk(data)
    except ParseError:
        return
    assert encode_svk(units) == data
