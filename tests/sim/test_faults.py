"""The fault registry: what a test injects is exactly what the gateway sees, once."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecuworks.errors import ConfigError
from ecuworks.sim.faults import (
    FAULT_KINDS,
    DropFault,
    Faults,
    NrcFault,
    SagFault,
    SilenceFault,
    parse_fault,
)


def test_parse_each_kind_and_round_trip_through_json() -> None:
    objs: list[dict[str, Any]] = [
        {"kind": "drop", "after_bytes": 100},
        {"kind": "silence", "ecu": 0x12},
        {"kind": "silence", "ecu": 0x12, "count": 3},
        {"kind": "nrc", "ecu": 0x12, "service": 0x36, "nth": 5, "nrc": 0x72},
        {"kind": "sag", "at": 1.5, "volts": 9.0, "duration": 2.0},
    ]
    for obj in objs:
        fault = parse_fault(obj)
        assert fault.to_json() == obj
        assert parse_fault(fault.to_json()) == fault


def test_parse_accepts_hex_strings_for_bytes_and_null_count() -> None:
    assert parse_fault(
        {"kind": "nrc", "ecu": "0x12", "service": "0x31", "nth": 1, "nrc": "0x22"}
    ) == NrcFault(ecu=0x12, service=0x31, nth=1, nrc=0x22)
    assert parse_fault({"kind": "silence", "ecu": 18, "count": None}) == SilenceFault(ecu=0x12)
    assert parse_fault({"kind": "sag", "at": 0, "volts": 9, "duration": 1}) == SagFault(
        at=0.0, volts=9.0, duration=1.0
    )


@pytest.mark.parametrize(
    ("obj", "named"),
    [
        ({"kind": "flood"}, "'drop', 'silence', 'nrc', 'sag'"),
        ({"after_bytes": 3}, "kind"),
        ({"kind": "drop"}, "'after_bytes'"),
        ({"kind": "drop", "after_bytes": -1}, "'after_bytes'"),
        ({"kind": "drop", "after_bytes": 1.5}, "'after_bytes'"),
        ({"kind": "drop", "after_bytes": True}, "'after_bytes'"),
        ({"kind": "drop", "after_bytes": 1, "after_byte": 2}, "'after_byte'"),
        ({"kind": "silence", "ecu": 256}, "'ecu'"),
        ({"kind": "silence", "ecu": "DME"}, "'ecu'"),
        ({"kind": "silence", "ecu": 1, "count": 0}, "'count'"),
        ({"kind": "nrc", "ecu": 1, "service": 0x36, "nth": 0, "nrc": 0x72}, "'nth'"),
        ({"kind": "nrc", "ecu": 1, "service": 0x36, "nth": 1, "nrc": 0}, "'nrc'"),
        ({"kind": "nrc", "ecu": 1, "service": 0x136, "nth": 1, "nrc": 0x72}, "'service'"),
        ({"kind": "sag", "at": -1, "volts": 9, "duration": 1}, "'at'"),
        ({"kind": "sag", "at": 0, "volts": 31, "duration": 1}, "'volts'"),
        ({"kind": "sag", "at": 0, "volts": 9, "duration": 0}, "'duration'"),
        ({"kind": "sag", "at": float("nan"), "volts": 9, "duration": 1}, "'at'"),
        ({"kind": "sag", "at": 0, "volts": "9", "duration": 1}, "'volts'"),
    ],
)
def test_parse_errors_name_the_field(obj: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        parse_fault(obj)


def test_parse_rejects_non_objects() -> None:
    with pytest.raises(ConfigError, match="JSON object"):
        parse_fault([1, 2])  # type: ignore[arg-type]


@given(st.dictionaries(st.text(max_size=12), st.none() | st.booleans() | st.integers() | st.text()))
def test_parse_arbitrary_objects_raises_only_config_error(obj: dict[str, Any]) -> None:
    try:
        fault = parse_fault(obj)
    except ConfigError:
        return
    assert fault.kind in FAULT_KINDS


def test_nth_request_of_the_service_counts_from_when_the_fault_was_added() -> None:
    faults = Faults()
    assert faults.take_nrc(0x12, 0x36) is None  # before the fault: not counted
    faults.add(NrcFault(ecu=0x12, service=0x36, nth=3, nrc=0x72), now=10.0)
    assert faults.take_nrc(0x12, 0x36) is None
    assert faults.take_nrc(0x12, 0x34) is None  # other service
    assert faults.take_nrc(0x18, 0x36) is None  # other ECU
    assert faults.list()[0]["seen"] == 1
    assert faults.take_nrc(0x12, 0x36) is None
    assert faults.take_nrc(0x12, 0x36) == 0x72
    assert faults.take_nrc(0x12, 0x36) is None  # once
    assert faults.list() == []


def test_two_nrc_faults_count_independently() -> None:
    faults = Faults()
    faults.add(NrcFault(ecu=1, service=0x22, nth=2, nrc=0x31), now=0)
    faults.take_nrc(1, 0x22)
    faults.add(NrcFault(ecu=1, service=0x22, nth=2, nrc=0x22), now=0)
    assert faults.take_nrc(1, 0x22) == 0x31  # the first reached 2; the second is at 1
    assert faults.take_nrc(1, 0x22) == 0x22


def test_silence_forever_or_for_count_requests() -> None:
    faults = Faults()
    faults.add(SilenceFault(ecu=0x40, count=2), now=0)
    assert faults.list()[0]["remaining"] == 2
    assert faults.silenced(0x12) is False
    assert [faults.silenced(0x40) for _ in range(3)] == [True, True, False]
    faults.add(SilenceFault(ecu=0x40), now=0)
    assert all(faults.silenced(0x40) for _ in range(50))
    faults.clear()
    assert faults.silenced(0x40) is False


def test_drop_budget_is_consumed_by_one_connection_each() -> None:
    faults = Faults()
    assert faults.take_drop() is None
    faults.add(DropFault(after_bytes=100), now=0)
    faults.add(DropFault(after_bytes=0), now=0)
    assert faults.take_drop() == 100
    assert faults.take_drop() == 0
    assert faults.take_drop() is None


def test_sags_are_absolute_and_stay_until_cleared() -> None:
    faults = Faults()
    stored = faults.add(SagFault(at=5.0, volts=9.5, duration=2.0), now=100.0)
    assert (stored["start"], stored["end"]) == (105.0, 107.0)
    faults.add(SagFault(at=6.0, volts=8.0, duration=10.0), now=100.0)
    assert faults.sags() == [(105.0, 107.0, 9.5), (106.0, 116.0, 8.0)]
    assert faults.sag_volts(104.9) is None
    assert faults.sag_volts(105.0) == 9.5
    assert faults.sag_volts(106.5) == 8.0  # the deeper of two overlapping sags
    assert faults.sag_volts(116.0) is None
    assert len(faults.sags()) == 2


def test_list_add_and_remove_by_id() -> None:
    faults = Faults()
    a = faults.add(DropFault(after_bytes=1), now=1.0)
    b = faults.add(SilenceFault(ecu=2), now=2.0)
    assert a == {"id": 1, "added_at": 1.0, "kind": "drop", "after_bytes": 1}
    assert [f["id"] for f in faults.list()] == [1, 2]
    assert faults.remove(a["id"]) is True
    assert faults.remove(a["id"]) is False
    assert faults.list() == [b]
