"""Plan benchmark: ``build_plan`` for an 80-ECU vehicle against a 5,000-variant catalog.

``python -m bench.plan`` (part of ``make bench``) builds, in memory, a series catalog with
5,000 target SVKs (80 ECU addresses, many hardware variants each, two I-levels) and an
identification of one vehicle of 80 ECUs whose every unit is one version behind, then
times :func:`ecuworks.plan.build_plan` to the newest I-level. Each run gets a fresh
:class:`~ecuworks.pdata.catalog.Catalog`, so the look-up indexes it builds on first use are
timed too. Goal: the median < 100 ms. The same is timed at 10, 20, 40 and 160 ECUs (the
catalog grows with them: 62.5 variants per ECU) to show how the time scales.

Figures go to the terminal and to ``bench/out/plan.json``; speed never fails the run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.common import figure, machine, peak_rss_mb, print_goals
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
from ecuworks.vehicle.identify import EcuMode, EcuState, Identification
from ecuworks.wire.ilevel import ILevel, ILevelTriple
from ecuworks.wire.sgbm import SgbmId
from ecuworks.wire.vo import VehicleOrder

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "bench" / "out" / "plan.json"
ECUS, VARIANTS = 80, 5000
SIZES = (10, 20, 40, ECUS, 160)  # ECUs; the catalog has VARIANTS / ECUS variants per ECU
GOAL_MS = 100.0
SERIES, OLD, NEW = "B080", "B080-24-03-500", "B080-24-11-500"
GATEWAY = 0x10  # on Ethernet, like an F- or G-series gateway
BUSES = (
    BusInfo(name="enet", kind="ethernet", bitrate=100_000_000),
    BusInfo(name="pt-can", kind="can", bitrate=500_000),
    BusInfo(name="k-can", kind="can", bitrate=500_000),
    BusInfo(name="fd-can", kind="canfd", bitrate=500_000, data_bitrate=2_000_000),
    BusInfo(name="flexray", kind="flexray", bitrate=10_000_000),
)
# Region layout of every ECU: bootloader, two application units.
REGIONS = (("BTLD", 0x0, 256 * 1024), ("SWFL", 0x100000, 2 << 20), ("SWFL", 0x400000, 1 << 20))


def _unit(cls: str, address: int, hw: int, index: int, version: int) -> str:
    return f"{cls}-00{address:02X}{hw:02X}{index:02X}-001.000.{version:03d}"


def synthetic(
    ecus_in_car: int = ECUS, variants: int = VARIANTS
) -> tuple[Identification, SeriesCatalog]:
    """The vehicle (hardware variant 0 of each address) and the catalog."""
    # Every address gets variants // ECUs hardware variants, the first ones one more, so
    # that the catalog holds exactly ``variants`` SVKs per I-level.
    share, extra = divmod(variants, ecus_in_car)
    first: list[int] = []  # index of each address's variant 0 in the I-level's targets
    ecus: list[EcuInfo] = []
    units: list[UnitInfo] = []
    targets: dict[str, list[TargetSvk]] = {OLD: [], NEW: []}
    for address in range(ecus_in_car):
        bus = BUSES[0] if address == GATEWAY else BUSES[address % len(BUSES)]
        ecus.append(
            EcuInfo(
                address=address,
                name=f"E{address:02X}",
                variant=f"V{address:02X}",
                bus=bus.name,
                max_block_length=0xFFF if bus.kind == "can" else 0x8002,
                erase_ms_per_kib=5.0,
                write_kib_s=300.0,
                boot_ms=800.0,
                security_algorithm="hmac-sha256",
                security_secret="00",
                regions=tuple(
                    RegionInfo(process_class=c, address=a, size=s) for c, a, s in REGIONS
                ),
            )
        )
        first.append(len(targets[OLD]))
        for hw in range(share + (address < extra)):
            hwel = _unit("HWEL", address, hw, 0x10, 0)
            for level, version in ((OLD, 1), (NEW, 2)):
                entries = [TargetUnit(sgbm=hwel)]
                for i, (cls, start, size) in enumerate(REGIONS):
                    sgbm = _unit(cls, address, hw, 0x60 + i, version)
                    entries.append(TargetUnit(sgbm=sgbm))
                    if level == NEW and hw == 0:
                        length = size // 2
                        units.append(
                            UnitInfo(
                                sgbm=sgbm,
                                path=f"units/{sgbm}.bin",
                                size=length,
                                sha256="0" * 64,
                                segments=(Segment(address=start, offset=0, length=length),),
                            )
                        )
                entries.append(TargetUnit(sgbm=_unit("CAFD", address, hw, 0x50, version)))
                svk = TargetSvk(variant=f"V{address:02X}", hardware=hwel, units=tuple(entries))
                targets[level].append(svk)
    catalog = SeriesCatalog(
        series=SERIES,
        ilevels=tuple(
            ILevelRelease(ilevel=level, date="2024-03-15", targets=tuple(targets[level]))
            for level in (OLD, NEW)
        ),
        ecus=tuple(ecus),
        units=tuple(units),
        buses=BUSES,
    )
    vehicle = tuple(
        EcuState(
            address=address,
            state=EcuMode.APPLICATION,
            svk=tuple(SgbmId.parse(u.sgbm) for u in targets[OLD][first[address]].units),
        )
        for address in range(ecus_in_car)
    )
    old = ILevel.parse(OLD)
    ident = Identification(
        vin="WBA00000000000080",
        vo=VehicleOrder.parse("8E9C#0715*A96%LCSW&$609"),
        ilevel=ILevelTriple(current=old, last=old, shipment=old),
        battery_volts=13.8,
        ecus=vehicle,
        gateway=GATEWAY,
    )
    return ident, catalog


def time_plan(ecus: int, runs: int) -> dict[str, Any]:
    """``runs`` plans of a car of ``ecus`` ECUs against its catalog, each with a fresh
    :class:`Catalog`: the times and the last plan's size and estimate."""
    variants = round(ecus * VARIANTS / ECUS)
    ident, series = synthetic(ecus, variants)
    times, plan = [], None
    for _ in range(runs):
        catalog = Catalog([series])
        start = time.perf_counter()
        plan = build_plan(ident, catalog)
        times.append(time.perf_counter() - start)
    assert plan is not None
    return {
        "ecus": ecus,
        "variants": variants,
        "median_ms": statistics.median(times) * 1000,
        "fastest_ms": min(times) * 1000,
        "actions": len(plan.actions),
        "estimate_s": plan.estimate_s,
        "lower_bound_s": plan.lower_bound_s,
    }


def figures(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The goal at 80 ECUs, its details, then the median at every other size."""
    goal = next(r for r in rows if r["ecus"] == ECUS)
    figs = [
        figure(
            f"plan {ECUS} ECUs / {VARIANTS} variants", goal["median_ms"], "ms", f"< {GOAL_MS:g}"
        ),
        figure("plan fastest", goal["fastest_ms"], "ms"),
        figure("plan actions", goal["actions"], "actions", digits=0),
        figure("plan estimate", goal["estimate_s"], "s"),
        figure("plan lower bound", goal["lower_bound_s"], "s"),
    ]
    figs += [
        figure(f"plan {r['ecus']} ECUs / {r['variants']} variants", r["median_ms"], "ms")
        for r in rows
        if r is not goal
    ]
    return [*figs, figure("peak RSS planning", peak_rss_mb(), "MB")]


def main(argv: list[str] | None = None) -> None:
    """Time the plan at every size, print the goal table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="plans per size (the median counts)")
    parser.add_argument("--quick", action="store_true", help="3 runs per size (smoke test)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    info = machine()  # before the run, so that the load average is other processes' load
    runs = 3 if args.quick else args.runs
    rows = [time_plan(ecus, runs) for ecus in SIZES]
    figs = figures(rows)
    goal = next(r for r in rows if r["ecus"] == ECUS)
    console = Console()
    console.print(
        f"plan benchmark - {info['cpu']}, {info['cores']} cores, Python {info['python']}: "
        f"{runs} runs per size; at {ECUS} ECUs {goal['actions']} actions, estimate "
        f"{goal['estimate_s']:.1f} s (lower bound {goal['lower_bound_s']:.1f} s)"
    )
    print_goals(console, info, figs, also=("plan",))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": "plan", "machine": info, "sizes": rows, "figures": figs}
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
