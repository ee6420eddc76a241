"""Vehicle order (FA/VO) codec: vectors, retrofit helpers and property tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecuworks.errors import ConfigError, ParseError
from ecuworks.wire.vo import VehicleOrder

EXAMPLE = "5A31#0724*A96%LCSW&$1CA$205$609-E11A+HW01"

alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def codes(size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alnum, min_size=size, max_size=size)


orders = st.builds(
    VehicleOrder,
    type_key=codes(4),
    time_criterion=st.builds("{:02d}{:02d}".format, st.integers(1, 12), st.integers(0, 99)),
    paint=st.one_of(codes(3), codes(4)),
    upholstery=st.one_of(codes(3), codes(4)),
    options=st.lists(codes(3).map(lambda c: "$" + c), unique=True, max_size=12).map(tuple),
    e_words=st.lists(codes(4), unique=True, max_size=3).map(tuple),
    ho_words=st.lists(codes(4), unique=True, max_size=3).map(tuple),
)


def test_parse_vector() -> None:
    order = VehicleOrder.parse(EXAMPLE)
    assert order == VehicleOrder(
        type_key="5A31",
        time_criterion="0724",
        paint="A96",
        upholstery="LCSW",
        options=("$1CA", "$205", "$609"),
        e_words=("E11A",),
        ho_words=("HW01",),
    )
    assert str(order) == EXAMPLE
    assert order.encode() == EXAMPLE.encode("ascii")
    assert VehicleOrder.decode(EXAMPLE.encode("ascii")) == order


def test_minimal_order_has_no_codes() -> None:
    order = VehicleOrder.parse("5A31#0724*475%KHSW&")
    assert order.options == ()
    assert order.e_words == ()
    assert order.ho_words == ()
    assert str(order) == "5A31#0724*475%KHSW&"


def test_options_keep_their_given_order() -> None:
    text = "5A31#0724*A96%LCSW&$609$1CA$205"
    assert str(VehicleOrder.parse(text)) == text
    assert VehicleOrder.parse(text) != VehicleOrder.parse("5A31#0724*A96%LCSW&$1CA$205$609")


def test_has_accepts_the_ways_a_technician_types_a_code() -> None:
    order = VehicleOrder.parse(EXAMPLE)
    assert order.has("$609")
    assert order.has("609")
    assert order.has("$1ca")
    assert not order.has("$6AK")
    with pytest.raises(ConfigError, match="'60'"):
        order.has("60")
    with pytest.raises(ConfigError, match="'\\$\\$609'"):
        order.has("$$609")


def test_with_and_without_option_return_new_orders() -> None:
    order = VehicleOrder.parse(EXAMPLE)
    added = order.with_option("6ak")
    assert str(added) == "5A31#0724*A96%LCSW&$1CA$205$609$6AK-E11A+HW01"
    assert order.options == ("$1CA", "$205", "$609")  # the original is unchanged
    assert added.with_option("$6AK") is added
    removed = added.without_option("205")
    assert str(removed) == "5A31#0724*A96%LCSW&$1CA$609$6AK-E11A+HW01"
    assert removed.without_option("205") is removed
    with pytest.raises(ConfigError):
        order.with_option("6A")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5A31#0724*A96%LCSW", "expected TTTT#MMYY*PAINT%UPHO&"),
        ("5A31*0724#A96%LCSW&", "expected TTTT#MMYY*PAINT%UPHO&"),
        ("5A3#0724*A96%LCSW&", "type key '5A3' must be 4 upper-case letters or digits"),
        ("5a31#0724*A96%LCSW&", "type key '5a31'"),
        ("5A31#1324*A96%LCSW&", "time criterion '1324' must be MMYY, month 01-12"),
        ("5A31#724*A96%LCSW&", "time criterion '724'"),
        ("5A31#0724*A9%LCSW&", "paint code 'A9'"),
        ("5A31#0724*A96%LCSWX&", "upholstery code 'LCSWX'"),
        ("5A31#0724*A96%LCSW&609", "after '&' every code starts with $, - or +"),
        ("5A31#0724*A96%LCSW&$60", "option '$60' must be $ and 3 upper-case letters or digits"),
        ("5A31#0724*A96%LCSW&$6099", "option '$6099'"),
        ("5A31#0724*A96%LCSW&$609$205$609", "option $609 appears twice"),
        ("5A31#0724*A96%LCSW&-E11", "E-word '-E11' must be - and 4"),
        ("5A31#0724*A96%LCSW&+HW01+HW01", "HO-word +HW01 appears twice"),
        ("5A31#0724*A96%LCSW&-E11A$609", "option '$609' is out of order"),
        ("5A31#0724*A96%LCSW&+HW01-E11A", "E-word '-E11A' is out of order"),
        ("5A31#0724*A96%LCSW&$609&$205", "option '$609&'"),
        ("5A31#0724*A96%LCSW&$60\u0669", "must be ASCII"),
        ("", "expected TTTT#MMYY"),
    ],
)
def test_parse_errors_name_the_input_and_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        VehicleOrder.parse(text)
    assert message in str(info.value)
    assert repr(text) in str(info.value)


def test_long_input_is_cut_short_in_the_message() -> None:
    text = EXAMPLE + "$" * 500
    with pytest.raises(ParseError) as info:
        VehicleOrder.parse(text)
    assert len(str(info.value)) < 300
    assert EXAMPLE[:40] in str(info.value)


def test_decode_rejects_non_ascii() -> None:
    with pytest.raises(ParseError, match="not ASCII"):
        VehicleOrder.decode(b"5A31#0724*A96%LCSW&$\xe9")


def test_constructor_checks_fields() -> None:
    with pytest.raises(ConfigError, match="option '609'"):
        VehicleOrder(
            type_key="5A31", time_criterion="0724", paint="A96", upholstery="LCSW", options=("609",)
        )
    with pytest.raises(ConfigError, match="appears twice"):
        VehicleOrder(
            type_key="5A31",
            time_criterion="0724",
            paint="A96",
            upholstery="LCSW",
            options=("$609", "$609"),
        )


@given(orders)
def test_text_round_trip(order: VehicleOrder) -> None:
    assert VehicleOrder.parse(str(order)) == order


@given(orders)
def test_binary_round_trip(order: VehicleOrder) -> None:
    assert VehicleOrder.decode(order.encode()) == order


@given(orders, codes(3))
def test_with_then_without_option(order: VehicleOrder, code: str) -> None:
    added = order.with_option(code)
    assert added.has(code)
    assert not added.without_option(code).has(code)
    if not order.has(code):
        assert added.without_option(code) == order


@settings(max_examples=2000)
@given(st.text(max_size=60))
def test_parse_raises_only_parse_error(text: str) -> None:
    try:
        order = VehicleOrder.parse(text)
    except ParseError:
        return
    assert str(order) == text


@settings(max_examples=2000)
@given(st.text(alphabet="5A31#0724*%LCSW&$-+E", max_size=40))
def test_parse_near_misses_raise_only_parse_error(text: str) -> None:
    try:
        order = VehicleOrder.parse(text)
    except ParseError:
        return
    assert str(order) == text


@settings(max_examples=2000)
@given(st.binary(max_size=60))
def test_decode_raises_only_parse_error(data: bytes) -> None:
    try:
        order = VehicleOrder.decode(data)
    except ParseError:
        return
    assert order.encode() == data
