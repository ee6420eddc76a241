"""I-level and I-level triple codecs: vectors, ordering rules and property tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecuworks.errors import ConfigError, ParseError
from ecuworks.wire.ilevel import ILevel, ILevelTriple

series = st.from_regex(r"[A-Z][A-Z0-9]{2,3}", fullmatch=True)
ilevels = st.builds(
    ILevel,
    series=series,
    year=st.integers(0, 99),
    month=st.integers(1, 12),
    build=st.integers(0, 999),
)
triples = st.builds(ILevelTriple, current=ilevels, last=ilevels, shipment=ilevels)
_VALID = b"F020-24-07-550F020-23-11-600F20-19-03-500 "


def test_parse_vector() -> None:
    level = ILevel.parse("F020-24-07-550")
    assert level == ILevel(series="F020", year=24, month=7, build=550)
    assert str(level) == "F020-24-07-550"
    assert str(ILevel.parse("f30-09-11-003")) == "F30-09-11-003"


def test_order_within_a_series() -> None:
    levels = [ILevel.parse(t) for t in ("F020-24-07-550", "F020-23-11-600", "F020-24-11-500")]
    assert [str(x) for x in sorted(levels)] == [
        "F020-23-11-600",
        "F020-24-07-550",
        "F020-24-11-500",
    ]
    a, b = ILevel.parse("F020-24-07-550"), ILevel.parse("F020-24-07-551")
    assert a < b
    assert a <= b
    assert b > a
    assert b >= a
    assert a <= ILevel.parse("F020-24-07-550")
    assert not a > ILevel.parse("F020-24-07-550")


def test_comparing_two_series_raises_type_error_naming_both() -> None:
    f020, g020 = ILevel.parse("F020-24-07-550"), ILevel.parse("G020-20-03-100")
    with pytest.raises(TypeError, match="F020-24-07-550 and G020-20-03-100"):
        _ = f020 < g020
    with pytest.raises(TypeError, match="different series"):
        sorted([f020, g020])
    assert f020 != g020
    assert sorted([g020, f020], key=lambda x: (x.series, x.sort_key)) == [f020, g020]


def test_comparing_with_something_else_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        _ = ILevel.parse("F020-24-07-550") < "F020-24-07-551"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("F020-24-13-550", "month must be 01-12, got 13"),
        ("F020-24-00-550", "month must be 01-12, got 00"),
        ("F020-24-7-550", "expected SSSS-YY-MM-NNN, as in F020-24-07-550"),
        ("F020-2024-07-550", "expected SSSS-YY-MM-NNN"),
        ("F020-24-07-55", "expected SSSS-YY-MM-NNN"),
        ("F020 24 07 550", "expected SSSS-YY-MM-NNN"),
        ("F2-24-07-550", "series must be 3-4 letters or digits starting with a letter"),
        ("F0200-24-07-550", "series must be 3-4"),
        ("0F20-24-07-550", "series must be 3-4"),
        ("F020-24-07-550\n", "expected SSSS-YY-MM-NNN"),
        ("F020-24-07-\u0665\u0665\u0660", "expected SSSS-YY-MM-NNN"),
        ("", "expected SSSS-YY-MM-NNN"),
    ],
)
def test_parse_errors_name_the_input(text: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        ILevel.parse(text)
    assert message in str(info.value)
    assert repr(text) in str(info.value)


def test_constructor_checks_fields() -> None:
    with pytest.raises(ConfigError, match="series"):
        ILevel(series="f020", year=24, month=7, build=550)
    with pytest.raises(ConfigError, match="month 1-12"):
        ILevel(series="F020", year=24, month=0, build=550)
    with pytest.raises(ConfigError, match="build 0-999"):
        ILevel(series="F020", year=24, month=1, build=1000)


@given(ilevels)
def test_text_round_trip(level: ILevel) -> None:
    assert ILevel.parse(str(level)) == level


@settings(max_examples=2000)
@given(st.text(max_size=24))
def test_parse_raises_only_parse_error(text: str) -> None:
    try:
        level = ILevel.parse(text)
    except ParseError:
        return
    assert str(level) == text.upper()


@settings(max_examples=2000)
@given(st.text(alphabet="FGfg0123456789-", max_size=18))
def test_parse_near_misses_raise_only_parse_error(text: str) -> None:
    try:
        level = ILevel.parse(text)
    except ParseError:
        return
    assert str(level) == text.upper()


# --- triple ----------------------------------------------------------------------------


def test_triple_vector_pads_with_spaces() -> None:
    triple = ILevelTriple(
        current=ILevel.parse("F020-24-07-550"),
        last=ILevel.parse("F020-23-11-600"),
        shipment=ILevel.parse("F20-19-03-500"),
    )
    data = triple.encode()
    assert data == b"F020-24-07-550F020-23-11-600F20-19-03-500 "
    assert ILevelTriple.decode(data) == triple


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"F020-24-07-550" * 2, "must be 42 bytes (3 fields of 14), got 28"),
        (b"F020-24-07-550" * 3 + b" ", "got 43"),
        (b"F020-24-07-550F020-24-13-550F020-24-07-550", "last field: I-level 'F020-24-13-550'"),
        (b"F020-24-07-550F020-24-07-550 F20-19-03-500", "shipment field: I-level ' F20-19-03-"),
        (b"F020-24-07-55\x00F020-24-07-550F020-24-07-550", "current field"),
        (b"F020-24-07-55\xffF020-24-07-550F020-24-07-550", "current field 46303230"),
        (b" " * 42, "current field: I-level ''"),
    ],
)
def test_triple_decode_errors_name_the_field(data: bytes, message: str) -> None:
    with pytest.raises(ParseError) as info:
        ILevelTriple.decode(data)
    assert message in str(info.value)


@given(triples)
def test_triple_round_trip(triple: ILevelTriple) -> None:
    data = triple.encode()
    assert len(data) == 42
    assert ILevelTriple.decode(data) == triple


@settings(max_examples=2000)
@given(
    st.one_of(
        st.binary(max_size=50),
        st.binary(min_size=42, max_size=42),
        # one byte of a valid record replaced: near misses that reach every field check
        st.tuples(st.integers(0, 41), st.integers(0, 255)).map(
            lambda t: _VALID[: t[0]] + bytes((t[1],)) + _VALID[t[0] + 1 :]
        ),
    )
)
def test_triple_decode_raises_only_parse_error(data: bytes) -> None:
    try:
        triple = ILevelTriple.decode(data)
    except ParseError:
        return
    assert triple.encode() == data.upper()
