"""The time model and the lower bound, hand-checked on a two-ECU catalog."""

from __future__ import annotations

import pytest

from ecuworks.pdata.catalog import Catalog
from ecuworks.pdata.model import (
    BusInfo,
    EcuInfo,
    ILevelRelease,
    RegionInfo,
    Segment,
    SeriesCatalog,
    TargetSvk,
    TargetUnit,
    UnitInfo,
)
from ecuworks.plan import build_plan
from ecuworks.plan.schedule import TESTER_LINK, EcuWork, UnitWork, schedule
from ecuworks.vehicle.identify import EcuMode, EcuState, Identification
from ecuworks.wire.ilevel import ILevel, ILevelTriple
from ecuworks.wire.sgbm import SgbmId
from ecuworks.wire.vo import VehicleOrder

OLD, NEW = "F099-24-01-100", "F099-24-07-100"
ENET = BusInfo(name="enet", kind="ethernet", bitrate=100_000_000)
CAN = BusInfo(name="can", kind="can", bitrate=500_000)
SHA = "0" * 64


def ecu(address: int, name: str, bus: str, *, block: int, erase: float, write: float) -> EcuInfo:
    return EcuInfo(
        address=address,
        name=name,
        variant=f"{name}_V",
        bus=bus,
        max_block_length=block,
        erase_ms_per_kib=erase,
        write_kib_s=write,
        boot_ms=500.0,
        security_algorithm="hmac-sha256",
        security_secret="00",
        regions=(RegionInfo(process_class="SWFL", address=0x10000, size=128 * 1024),),
    )


def image(sgbm: str, size: int) -> UnitInfo:
    return UnitInfo(
        sgbm=sgbm,
        path=f"units/{sgbm}.bin",
        size=size,
        sha256=SHA,
        segments=(Segment(address=0x10000, offset=0, length=size),),
    )


def tiny() -> tuple[Identification, Catalog]:
    """Gateway GW (0x10) on Ethernet and ECU (0x20) on CAN, one SWFL each to update."""
    units = {
        0x10: ("HWEL-00991010-001.000.000", "SWFL-00991080-001.000.00{}", 102_400),
        0x20: ("HWEL-00992010-001.000.000", "SWFL-00992080-001.000.00{}", 40_960),
    }

    def release(level: str, version: int) -> ILevelRelease:
        return ILevelRelease(
            ilevel=level,
            date="2024-01-15",
            targets=tuple(
                TargetSvk(
                    variant=name,
                    hardware=hw,
                    units=(TargetUnit(sgbm=hw), TargetUnit(sgbm=swfl.format(version))),
                )
                for name, (hw, swfl, _) in zip(("GW_V", "ECU_V"), units.values(), strict=True)
            ),
        )

    series = SeriesCatalog(
        series="F099",
        ilevels=(release(OLD, 1), release(NEW, 2)),
        ecus=(
            ecu(0x10, "GW", "enet", block=0x1002, erase=10.0, write=100.0),
            ecu(0x20, "ECU", "can", block=0x802, erase=5.0, write=200.0),
        ),
        units=tuple(image(swfl.format(2), size) for _, swfl, size in units.values()),
        buses=(ENET, CAN),
    )
    ident = Identification(
        vin="WBA00000000000001",
        vo=VehicleOrder.parse("8E9C#0715*A96%LCSW&$609"),
        ilevel=ILevelTriple(
            current=ILevel.parse(OLD), last=ILevel.parse(OLD), shipment=ILevel.parse(OLD)
        ),
        battery_volts=13.8,
        ecus=tuple(
            EcuState(
                address=a,
                state=EcuMode.APPLICATION,
                svk=(SgbmId.parse(hw), SgbmId.parse(swfl.format(1))),
            )
            for a, (hw, swfl, _) in units.items()
        ),
        gateway=0x10,
    )
    return ident, Catalog([series])


# Classic CAN frame, 8 data bytes, 11-bit id, typical stuffing (1 stuff bit per 30):
# SOF + id/control 18 + data 64 + CRC 15 = 98 stuffable bits, + 98/30, + 10 trailer + 3 IFS.
CAN_FRAME_S = (98 + 98 / 30 + 10 + 3) / 500_000
# A 0x802 block is 2050 bytes of ISO-TP with extended addressing: a first frame with 5,
# 341 consecutive frames with 6 (the last padded), one flow control; the answer is one
# single frame: 344 frames per block, 40960 / 2048 = 20 blocks.
CAN_BUS_S = 20 * 344 * CAN_FRAME_S
# Session overhead: 6 requests at 10 ms, and the reset's 500 ms boot.
FIXED_S = 6 * 0.01 + 0.5
# Each unit: 4 requests at 10 ms are not in the bound, only in the estimate.
GW_BOUND = FIXED_S + 128 * 10 / 1000 + max(0.0088, 102_400 / (100 * 1024))  # write wins
ECU_BOUND = FIXED_S + 128 * 5 / 1000 + max(CAN_BUS_S, 40_960 / (200 * 1024))  # CAN wins
# On the tester link: TCP segments of 1460 bytes, 78 bytes of overhead each.
LINK_S = ((70 * 1538 + 200 + 78) + (28 * 1538 + 80 + 78)) * 8 / 100_000_000


def test_the_lower_bound_terms_match_the_formula() -> None:
    ident, catalog = tiny()
    plan = build_plan(ident, catalog)
    terms = plan.lower_bound_terms
    assert [a.unit for a in plan.actions] == [
        "SWFL-00991080-001.000.002",
        "SWFL-00992080-001.000.002",
    ]
    assert terms["ecu 0x10 GW"] == pytest.approx(GW_BOUND, abs=1e-3)
    assert terms["ecu 0x20 ECU"] == pytest.approx(ECU_BOUND, abs=1e-3)
    assert terms["bus can"] == pytest.approx(CAN_BUS_S, abs=1e-3)
    assert terms["link"] == pytest.approx(LINK_S, abs=1e-3)
    assert terms["chain GW → ECU"] == pytest.approx(GW_BOUND + ECU_BOUND, abs=1e-3)
    assert plan.lower_bound_s == terms["chain GW → ECU"]
    assert plan.estimate_s >= plan.lower_bound_s
    # the estimate: each ECU alone (bus and writing one after the other) plus the steps
    ecu_alone = FIXED_S + 4 * 0.01 + 0.64 + CAN_BUS_S + 0.2
    assert plan.schedule[1].end_s - plan.schedule[1].start_s == pytest.approx(ecu_alone, abs=2e-3)
    assert plan.critical_path[0].startswith("GW (0x10)")


def work(address: int, bus: BusInfo, bus_s: float, write_s: float) -> EcuWork:
    unit = UnitWork(bytes=1000, erase_s=0.0, bus_s=bus_s, link_s=0.0, write_s=write_s)
    return EcuWork(address=address, name=f"E{address:X}", bus=bus, units=(unit,), fixed_s=0.5)


def test_two_ecus_on_one_bus_share_it() -> None:
    first, second = work(0x20, CAN, 10.0, 1.0), work(0x21, CAN, 10.0, 1.0)
    other_can = BusInfo(name="can2", kind="can", bitrate=500_000)
    apart = schedule([first, work(0x21, other_can, 10.0, 1.0)], 0x10, TESTER_LINK)
    together = schedule([first, second], 0x10, TESTER_LINK)
    alone = first.alone_s
    assert apart.makespan_s == pytest.approx(alone)
    assert together.makespan_s > alone * 1.5
    # the bus is never given more than it has: both transfers need 20 s of it
    assert together.makespan_s >= 20.0


def test_ecus_that_mostly_write_barely_slow_each_other_on_ethernet() -> None:
    works = [work(a, ENET, 0.1, 10.0) for a in (0x20, 0x21, 0x22)]
    timeline = schedule(works, 0x10, TESTER_LINK)
    assert timeline.makespan_s == pytest.approx(works[0].alone_s)


def test_the_gateway_runs_before_everyone_else() -> None:
    gateway, other = work(0x10, ENET, 0.1, 2.0), work(0x20, CAN, 1.0, 0.1)
    timeline = schedule([other, gateway], 0x10, TESTER_LINK)
    assert timeline.slots[0x10][0] == 0.0
    assert timeline.slots[0x20][0] == pytest.approx(timeline.slots[0x10][1])
    assert timeline.makespan_s == pytest.approx(gateway.alone_s + other.alone_s)
