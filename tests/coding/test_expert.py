"""Expert coding's look-ups: a parameter's value in the ECU's bytes, its choices, the VO's value."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ecuworks.coding.expert import (
    check_value,
    decode_value,
    parameter_values,
    read_records,
    vo_value,
)
from ecuworks.coding.ncd import coded_records
from ecuworks.errors import ConfigError, NegativeResponse
from ecuworks.pdata.catalog import Catalog
from ecuworks.pdata.model import (
    CodingLayout,
    CodingParameter,
    CodingRecord,
    CodingRule,
    ILevelRelease,
    SeriesCatalog,
)
from ecuworks.pdata.model.release import Condition
from ecuworks.transport.memory import MemoryLink
from ecuworks.uds.client import Timing, UdsClient
from ecuworks.wire.vo import VehicleOrder

HU = 0x63
CAFD = "CAFD-00F36351-001.000.000"
LAYOUT = CodingLayout(
    records=(
        CodingRecord(did=0x3000, length=4, checksum="sum8", checksum_at=3, checksum_seed=0x10),
        CodingRecord(did=0x3001, length=2),
    ),
    parameters=(
        CodingParameter(
            name="navigation", did=0x3000, byte=0, mask=0x01, values={"off": 0, "on": 1}
        ),
        CodingParameter(
            name="region", did=0x3000, byte=1, mask=0x0E, values={"eu": 0, "us": 1, "cn": 5}
        ),
        CodingParameter(name="units", did=0x3001, byte=1, mask=0xC0, values={"km": 0, "mi": 3}),
    ),
)
# navigation on; region field 5 (cn), the other bits of byte 1 set; units field 3 (mi).
RECORDS = {0x3000: bytes.fromhex("01 fb 00 0c"), 0x3001: bytes.fromhex("00 c0")}


def test_decode_reads_each_parameter_from_its_bits() -> None:
    assert decode_value(LAYOUT, RECORDS, "navigation") == "on"
    assert decode_value(LAYOUT, RECORDS, "region") == "cn"
    assert decode_value(LAYOUT, RECORDS, "units") == "mi"


def test_decode_of_bits_no_value_is_named_for_is_none() -> None:
    # Region field 2 (0b0100 in byte 1): the P-Data names 0, 1 and 5 only.
    records = {**RECORDS, 0x3000: bytes.fromhex("01 04 00 15")}
    assert decode_value(LAYOUT, records, "region") is None


def test_decode_sees_what_coded_records_wrote() -> None:
    coded = coded_records(LAYOUT, {"navigation": "off", "region": "us", "units": "km"}, RECORDS)
    assert decode_value(LAYOUT, coded, "navigation") == "off"
    assert decode_value(LAYOUT, coded, "region") == "us"
    assert decode_value(LAYOUT, coded, "units") == "km"
    # Bits no parameter names are the ECU's own and stay.
    assert coded[0x3000][1] & 0xF1 == RECORDS[0x3000][1] & 0xF1


def test_an_unknown_parameter_names_it_and_lists_the_ecus_parameters() -> None:
    with pytest.raises(ConfigError) as raised:
        decode_value(LAYOUT, RECORDS, "naviagtion")
    assert "'naviagtion'" in str(raised.value)
    assert "navigation, region, units" in str(raised.value)


def test_a_record_too_short_for_the_parameter_says_the_software_and_p_data_disagree() -> None:
    with pytest.raises(ConfigError, match="do not match"):
        decode_value(LAYOUT, {0x3000: bytes.fromhex("01 fb 00 0c"), 0x3001: b"\x00"}, "units")
    with pytest.raises(ConfigError, match="0x3001"):
        decode_value(LAYOUT, {0x3000: RECORDS[0x3000]}, "units")


def test_parameter_values_and_their_check() -> None:
    assert parameter_values(LAYOUT, "region") == ["eu", "us", "cn"]
    check_value(LAYOUT, "region", "us")
    with pytest.raises(ConfigError) as raised:
        check_value(LAYOUT, "region", "jp")
    assert "'jp'" in str(raised.value)
    assert "eu, us, cn" in str(raised.value)
    with pytest.raises(ConfigError, match="navigation, region, units"):
        parameter_values(LAYOUT, "speed")


def _catalog() -> Catalog:
    rules = (
        CodingRule(
            address=HU, cafd=CAFD, parameter="navigation", value="on", when=Condition.has("$609")
        ),
        CodingRule(address=HU, cafd=CAFD, parameter="navigation", value="off"),
        CodingRule(
            address=HU, cafd=CAFD, parameter="units", value="mi", when=Condition.has("$8TF")
        ),
    )
    release = ILevelRelease(ilevel="F030-24-03-550", date="2024-03-15", targets=())
    return Catalog(
        [SeriesCatalog(series="F030", ilevels=(release,), ecus=(), units=(), coding_rules=rules)]
    )


def test_vo_value_is_the_first_rule_that_holds_or_none() -> None:
    catalog = _catalog()
    with_nav = VehicleOrder.parse("5A31#0724*A96%LCSW&$1CA$609")
    without = VehicleOrder.parse("5A31#0724*A96%LCSW&$1CA")
    assert vo_value(catalog, "F030", HU, with_nav, "navigation") == "on"
    assert vo_value(catalog, "F030", HU, without, "navigation") == "off"
    # No rule holds for units without $8TF, and none exists for region: the VO says nothing.
    assert vo_value(catalog, "F030", HU, without, "units") is None
    assert vo_value(catalog, "F030", HU, with_nav, "region") is None


async def test_read_records_reads_each_coding_did_in_the_session_the_ecu_is_in() -> None:
    async def ecu(target: int, request: bytes) -> AsyncIterator[bytes]:
        did = int.from_bytes(request[1:3], "big")
        if request[0] == 0x22 and did in RECORDS:
            yield b"\x62" + request[1:3] + RECORDS[did]
        else:
            yield bytes((0x7F, request[0], 0x31))

    link = MemoryLink(ecu)
    await link.open()
    try:
        records = await read_records(UdsClient(link, HU, timing=Timing(p2=5.0)), LAYOUT)
    finally:
        await link.close()
    assert records == RECORDS
    # Reading is harmless: no session change, nothing written.
    assert [payload for _, payload in link.sent] == [
        bytes.fromhex("22 3000"),
        bytes.fromhex("22 3001"),
    ]


async def test_read_records_of_an_ecu_in_its_bootloader_is_refused() -> None:
    async def bootloader(target: int, request: bytes) -> AsyncIterator[bytes]:
        yield bytes((0x7F, request[0], 0x31))

    link = MemoryLink(bootloader)
    await link.open()
    try:
        with pytest.raises(NegativeResponse):
            await read_records(UdsClient(link, HU, timing=Timing(p2=5.0)), LAYOUT)
    finally:
        await link.close()
