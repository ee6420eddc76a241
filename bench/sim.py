"""Simulator benchmark: does the simulated vehicle keep the time the bus model promises?

``python -m bench.sim`` (part of ``make bench``) starts the simulator (:mod:`ecuworks.sim`)
in its own process and programs one region of an ECU with ecuworks' own client (DoipLink +
UdsClient: session, security access, erase, then the timed download ``34``, ``36`` x n,
``37``), then checks what arrived with routine 0202 (CRC-32). Two figures:

1. **CAN at time-scale 1**: a 1 MiB download to a classic CAN 500 kbit/s ECU of the
   f-series (one with STmin 0 and, smaller, one with STmin 1 ms) against the ISO-TP
   arithmetic of :mod:`ecuworks.sim.timing` for that ECU's block length, STmin and block
   size; goal: within ±10 %.
2. **Ethernet at time-scale 100**: a download to the g-series head unit; goal: the
   simulator serves >= 20 MiB/s. When it misses, the simulator process is profiled
   (cProfile) during a second download and the top functions are printed.

Figures go to the terminal and to ``bench/out/sim.json``. Speed never fails the run; exit 1
means a download failed or what arrived differs from the image. bench/README.md says what
the arithmetic includes and how to read the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import hashlib
import json
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import figure, machine, print_goals, profile_rows
from ecuworks.profiles import load_profile
from ecuworks.profiles.model import BusProfile, VehicleProfile
from ecuworks.sim.state import EcuState, RegionState, VehicleState
from ecuworks.sim.timing import transfer_seconds

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "bench" / "out" / "sim.json"

KIB, MIB = 1024, 1024 * 1024
CAN_VEHICLE, CAN_BITRATE = "f-series", 500_000
CAN_SIZES = {0.0: (1 * MIB, 64 * KIB), 1.0: (64 * KIB, 8 * KIB)}  # STmin ms: (full, quick)
TOLERANCE = 0.10  # measured within ±10 % of the arithmetic
ETH_VEHICLE, ETH_ECU_NAME, ETH_TIME_SCALE = "g-series", "HU", 100.0
ETH_SIZE, ETH_QUICK_SIZE = 64 * MIB, 8 * MIB
ETH_GOAL_MIB_S = 20.0
PROFILE_TOP = 15  # functions shown when the Ethernet figure misses
SECURITY_LEVEL = 0x11  # programming (DOMAIN.md)
MEMORY_FORMAT = (4, 4)  # address and size bytes in 34 and in routine FF00
SERVER_START_TIMEOUT_S = 60.0

# The payload is a fixed pseudo-random 1 MiB pattern repeated (random data, as compressed or
# encrypted images are; the CAN model's "typical" bit stuffing assumes as much).
PATTERN = random.Random(0x5EED).randbytes(MIB)


# -- the image ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Image:
    """An EWU1 unit image of ``size`` bytes (header + payload), produced piece by piece."""

    header: bytes
    size: int

    @classmethod
    def for_region(cls, region: RegionState, size: int) -> Image:
        """A valid image of ``size`` bytes for ``region``: the next patch of its unit."""
        from ecuworks.wire.sgbm import ProcessClass, SgbmId
        from ecuworks.wire.unit_image import HEADER_SIZE, UnitHeader

        if region.unit is not None:
            old = SgbmId.parse(region.unit)
            sgbm = SgbmId(
                process_class=old.process_class,
                unit_id=old.unit_id,
                main=old.main,
                sub=old.sub,
                patch=(old.patch + 1) % 256,
            )
        else:
            sgbm = SgbmId(
                process_class=ProcessClass[region.process_class],
                unit_id=0xBE4C,
                main=1,
                sub=0,
                patch=0,
            )
        payload = size - HEADER_SIZE
        digest = hashlib.sha256()
        for piece in _payload(payload):
            digest.update(piece)
        header = UnitHeader(sgbm=sgbm, payload_length=payload, payload_sha256=digest.digest())
        return cls(header.encode(), size)

    def chunks(self) -> Iterator[bytes | memoryview]:
        """The image in pieces of up to 1 MiB, without holding it whole."""
        yield self.header
        yield from _payload(self.size - len(self.header))


def _payload(size: int) -> Iterator[memoryview]:
    pattern = memoryview(PATTERN)
    for offset in range(0, size, MIB):
        yield pattern[: min(MIB, size - offset)]


# -- the arithmetic -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Expected:
    """Simulated seconds a download takes by the model, in parts (see :func:`expected`)."""

    blocks: int
    requests_s: float  # 34, every 36 (SID + counter + block), 37 on the ECU's bus
    answers_s: float  # 74, every 76 cc, 77 on the ECU's bus
    write_s: float  # flash write of every block, before its 76 answer

    @property
    def total_s(self) -> float:
        """The whole download."""
        return self.requests_s + self.answers_s + self.write_s


def expected(bus: BusProfile, ecu: EcuState, size: int) -> Expected:
    """The model's time for ``34``, ``36`` x n, ``37`` of ``size`` raw bytes to ``ecu``.

    As the gateway books it (``Gateway._transfer``): each request crosses the ECU's bus,
    on CAN as ISO-TP with extended addressing, paced by the ECU's own STmin and block size
    from its flow control; the ECU then works (TransferData: writes the block at
    ``write_kib_s``, the other two answer at once); each answer crosses the bus without
    STmin or block size. The tester's own Ethernet link and the gateway's routing are
    not in the model, so not in this time.
    """
    from ecuworks.uds.download import block_payload_size

    can = bus.kind in ("can", "canfd")
    stmin_s = ecu.isotp_stmin_ms / 1000

    def request(n: int) -> float:
        if can:
            return transfer_seconds(
                bus, n, stmin_s=stmin_s, block_size=ecu.isotp_block_size, addressing="extended"
            )
        return transfer_seconds(bus, n)

    def answer(n: int) -> float:
        return transfer_seconds(bus, n, addressing="extended") if can else transfer_seconds(bus, n)

    address_bytes, size_bytes = MEMORY_FORMAT
    width = max(2, (ecu.max_block_length.bit_length() + 7) // 8)  # 74 LFI maxNumberOfBlockLength
    block = block_payload_size(ecu.max_block_length)
    full, last = divmod(size, block)
    lengths = [block] * full + ([last] if last else [])
    requests = request(3 + address_bytes + size_bytes) + request(1)  # 34 DFI ALFID ..., 37
    answers = answer(2 + width) + answer(1)  # 74 LFI max..., 77
    requests += full * request(2 + block) + (request(2 + last) if last else 0.0)
    answers += len(lengths) * answer(2)
    write = size / (ecu.write_kib_s * 1024)
    return Expected(blocks=len(lengths), requests_s=requests, answers_s=answers, write_s=write)


# -- choosing ECUs and sizes --------------------------------------------------------------------


def _swfl(ecu: EcuState) -> RegionState | None:
    return next((r for r in ecu.regions if r.process_class == "SWFL"), None)


def pick_can_ecu(profile: VehicleProfile, stmin_ms: float) -> int | None:
    """A classic CAN 500 kbit/s ECU with this STmin and no block size, the largest blocks.

    Ties go to the fastest erase (the bench erases the region first), then to the lowest
    address, so the choice is stable (f-series: DME for STmin 0, IHKA for 1 ms).
    """
    buses = {b.name: b for b in profile.buses}
    fits = [
        e
        for e in profile.ecus
        if buses[e.bus].kind == "can"
        and buses[e.bus].bitrate == CAN_BITRATE
        and e.isotp_stmin_ms == stmin_ms
        and e.isotp_block_size == 0
        and any(r.process_class == "SWFL" for r in e.regions)
    ]
    best = min(
        fits, key=lambda e: (-e.max_block_length, e.erase_ms_per_kib, e.address), default=None
    )
    return None if best is None else best.address


def pick_ecu_by_name(profile: VehicleProfile, name: str) -> int:
    """The address of the ECU called ``name``."""
    return next(e.address for e in profile.ecus if e.name == name)


def fitting_profile(vehicle: str, address: int, size: int) -> VehicleProfile:
    """The vehicle with the smallest size scale that makes ``address``'s SWFL hold ``size``.

    The smallest, because erasing the region (before the download) takes time too.
    """
    real = next(e for e in load_profile(vehicle, size_scale=1.0).ecus if e.address == address)
    region_size = next(r.size for r in real.regions if r.process_class == "SWFL")
    scale = size / region_size
    for _ in range(50):
        profile = load_profile(vehicle, size_scale=scale)
        ecu = next(e for e in profile.ecus if e.address == address)
        if next(r.size for r in ecu.regions if r.process_class == "SWFL") >= size:
            return profile
        scale *= 1.001
    raise RuntimeError(f"no size scale makes ECU 0x{address:02X}'s SWFL hold {size} bytes")


# -- the simulator's process ------------------------------------------------------------------


def serve(spec: dict[str, Any]) -> int:
    """Body of the simulator process: serve until stdin closes.

    Prints ``ready PORT`` (the DoIP port). Lines on stdin: ``stats`` prints this
    process's CPU seconds and peak RSS as JSON; ``profile on`` starts cProfile,
    ``profile off PATH`` stops it and writes the statistics to PATH, then prints ``ok``.
    """
    from ecuworks.sim.simulator import Simulator

    async def main() -> None:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str] = asyncio.Queue()

        def read() -> None:  # a thread, so that the event loop never blocks on stdin
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, "")

        threading.Thread(target=read, daemon=True).start()
        profiler: cProfile.Profile | None = None
        async with Simulator.on_free_ports(
            spec["vehicle"],
            time_scale=spec["time_scale"],
            size_scale=spec["size_scale"],
        ) as sim:
            print(f"ready {sim.ports['doip']}", flush=True)
            while line := await lines.get():
                words = line.split()
                if words == ["stats"]:
                    print(json.dumps(_usage()), flush=True)
                elif words == ["profile", "on"]:
                    profiler = cProfile.Profile(time.process_time)  # CPU, not idle waits
                    profiler.enable()
                elif words[:2] == ["profile", "off"] and profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(words[2])
                    print("ok", flush=True)

    asyncio.run(main())
    return 0


def _usage() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "rss_kib": usage.ru_maxrss}


class SimProcess:
    """The simulator in its own process, so that it and the client each get a core."""

    def __init__(self, profile: VehicleProfile, time_scale: float) -> None:
        spec = {"vehicle": profile.name, "time_scale": time_scale, "size_scale": profile.size_scale}
        cmd = [sys.executable, "-m", "bench.sim", "--serve", json.dumps(spec)]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.port = int(self._expect("ready").split()[1])

    def _expect(self, prefix: str) -> str:
        """The next stdout line that starts with ``prefix`` (the simulator may log too)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the simulator exited (code {self.proc.wait()})")
            if line.startswith(prefix):
                return line.strip()
        raise RuntimeError(f"the simulator did not print {prefix!r}")

    def _say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stats(self) -> dict[str, float]:
        """The simulator process's CPU seconds and peak RSS so far."""
        self._say("stats")
        return dict(json.loads(self._expect("{")))

    def profile_on(self) -> None:
        """Start profiling the simulator's event loop thread."""
        self._say("profile on")

    def profile_off(self, path: Path) -> None:
        """Stop profiling and write the statistics to ``path``."""
        self._say(f"profile off {path}")
        self._expect("ok")

    def close(self) -> None:
        """Close stdin (the simulator stops) and reap the process."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- one programming run ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Measured:
    """One timed download and its check."""

    seconds: float  # wall time of UdsClient.download: 34 to the answer to 37
    blocks: int
    bytes: int
    max_block_length: int
    crc_ok: bool  # routine 0202 confirmed the CRC-32 of what arrived
    sim_cpu_s: float  # the simulator process's CPU time during the download
    client_cpu_s: float  # this process's CPU time during the download


async def program(sim: SimProcess, ecu: EcuState, size: int, profile_to: Path | None) -> Measured:
    """Session 03 then 02, security access, erase, the timed download, routine 0202."""
    from ecuworks.transport.doip import DoipLink
    from ecuworks.uds.client import UdsClient
    from ecuworks.wire.uds import encode_memory_location

    region = _swfl(ecu)
    assert region is not None
    image = Image.for_region(region, size)
    address_bytes, size_bytes = MEMORY_FORMAT
    async with DoipLink("127.0.0.1", sim.port) as link:
        client = UdsClient(link, ecu.address)
        await client.change_session(0x03)
        await client.change_session(0x02)
        await client.security_access(SECURITY_LEVEL, ecu.security_algorithm, ecu.security_secret)
        location = encode_memory_location(
            region.address, region.size, address_bytes=address_bytes, size_bytes=size_bytes
        )
        await client.routine(0xFF00, data=location)
        if profile_to is not None:
            sim.profile_on()
        before = sim.stats()["cpu_s"]
        start, cpu = time.perf_counter(), time.process_time()
        result = await client.download(
            region.address, size, image.chunks(), memory_format=MEMORY_FORMAT
        )
        seconds, client_cpu = time.perf_counter() - start, time.process_time() - cpu
        sim_cpu = sim.stats()["cpu_s"] - before
        if profile_to is not None:
            sim.profile_off(profile_to)
        check = await client.routine(0x0202, data=result.crc32.to_bytes(4, "big"))
    return Measured(
        seconds=seconds,
        blocks=result.blocks,
        bytes=result.bytes_sent,
        max_block_length=result.max_block_length,
        crc_ok=check[-1:] == b"\x00",
        sim_cpu_s=sim_cpu,
        client_cpu_s=client_cpu,
    )


def run_case(
    vehicle: str,
    address: int,
    size: int,
    time_scale: float,
    *,
    profile_to: Path | None = None,
) -> dict[str, Any]:
    """Program ``size`` bytes into ``address``'s SWFL on a fresh simulator; one result row."""
    profile = fitting_profile(vehicle, address, size)
    state = VehicleState.from_profile(profile)  # what the simulator starts from
    ecu = state.ecus[address]
    bus = next(b for b in profile.buses if b.name == ecu.bus)
    model = expected(bus, ecu, size)
    row: dict[str, Any] = {
        "vehicle": vehicle,
        "ecu": ecu.name,
        "address": address,
        "bus": bus.name,
        "bus_kind": bus.kind,
        "bitrate": bus.bitrate,
        "stmin_ms": ecu.isotp_stmin_ms,
        "block_size": ecu.isotp_block_size,
        "max_block_length": ecu.max_block_length,
        "write_kib_s": ecu.write_kib_s,
        "size": size,
        "size_scale": profile.size_scale,
        "time_scale": time_scale,
        "expected_blocks": model.blocks,
        "expected_requests_s": model.requests_s / time_scale,
        "expected_answers_s": model.answers_s / time_scale,
        "expected_write_s": model.write_s / time_scale,
        "expected_s": model.total_s / time_scale,
    }
    sim = SimProcess(profile, time_scale)
    try:
        measured = asyncio.run(program(sim, ecu, size, profile_to))
        row["sim_rss_kib"] = sim.stats()["rss_kib"]
    except Exception as exc:  # report it as the row's error; the run exits 1
        return row | {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        sim.close()
    row |= {
        "measured_s": measured.seconds,
        "blocks": measured.blocks,
        "bytes": measured.bytes,
        "granted_block_length": measured.max_block_length,
        "crc_ok": measured.crc_ok,
        "sim_cpu_s": measured.sim_cpu_s,
        "ratio": measured.seconds / row["expected_s"],
        "mib_s": measured.bytes / measured.seconds / MIB,
        "model_mib_s": size / row["expected_s"] / MIB,
        "overhead_us_per_block": (measured.seconds - row["expected_s"]) / measured.blocks * 1e6,
        "sim_cpu_us_per_block": measured.sim_cpu_s / measured.blocks * 1e6,
        "client_cpu_us_per_block": measured.client_cpu_s / measured.blocks * 1e6,
    }
    if not measured.crc_ok or measured.bytes != size:
        row["error"] = "the data that arrived differs from the image"
    elif measured.blocks != model.blocks or measured.max_block_length != ecu.max_block_length:
        row["error"] = f"{measured.blocks} blocks: not the block length the ECU grants"
    return row


def profile_top(path: Path, count: int) -> dict[str, Any]:
    """A cProfile dump in two views: every function by own CPU time, and the simulator's
    own functions (``ecuworks/sim``) by cumulative CPU time (what each costs with callees).
    """
    total, rows = profile_rows(path)
    for row in rows:
        row["own_share"] = row["own_s"] / total if total else 0.0
        row["cum_share"] = row["cum_s"] / total if total else 0.0
    by_own = sorted(rows, key=lambda r: -r["own_s"])[:count]
    ours = [r for r in rows if r["function"].startswith("ecuworks/sim/")]
    by_cum = sorted(ours, key=lambda r: -r["cum_s"])[:count]
    return {"cpu_s": total, "by_own": by_own, "sim_by_cum": by_cum}


# -- figures and report ----------------------------------------------------------------------


def _label(size: int) -> str:
    return f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"


def can_name(row: dict[str, Any]) -> str:
    """Name of a CAN row's figures."""
    return f"CAN {row['ecu']} STmin {row['stmin_ms']:g} ms {_label(row['size'])} at time-scale 1"


def eth_name(row: dict[str, Any]) -> str:
    """Name of the Ethernet row's figures."""
    return f"Ethernet {row['ecu']} {_label(row['size'])} at time-scale {row['time_scale']:g}"


def figures(
    can_rows: list[dict[str, Any]], eth: dict[str, Any], rss_kib: int
) -> list[dict[str, Any]]:
    """Per-row figures, the two goals, and the peak RSS of both processes."""
    out = []
    low, high = 1 - TOLERANCE, 1 + TOLERANCE
    for r in can_rows:
        name = can_name(r)
        ok = "error" not in r
        out += [
            figure(f"{name}: expected (ISO-TP arithmetic)", r["expected_s"], "s"),
            figure(f"{name}: measured", r.get("measured_s"), "s"),
            figure(f"{name}: ISO-TP ceiling", r["model_mib_s"] * 1024 if ok else None, "KiB/s"),
            figure(f"{name}: throughput", r["mib_s"] * 1024 if ok else None, "KiB/s"),
            figure(
                f"{name}: measured / ISO-TP arithmetic",
                r.get("ratio"),
                "x",
                f">= {low:.2f} and <= {high:.2f}",
                ok and low <= r["ratio"] <= high,
            ),
        ]
    name = eth_name(eth)
    ok = "error" not in eth
    out += [
        figure(f"{name}: model ceiling", eth["model_mib_s"] if ok else None, "MiB/s"),
        figure(f"{name}: time over the model per block", eth.get("overhead_us_per_block"), "µs"),
        figure(f"{name}: simulator CPU per block", eth.get("sim_cpu_us_per_block"), "µs"),
        figure(f"{name}: client CPU per block", eth.get("client_cpu_us_per_block"), "µs"),
        figure(
            f"{name}: simulator serves",
            eth.get("mib_s"),
            "MiB/s",
            f">= {ETH_GOAL_MIB_S:g}",
            ok and eth["mib_s"] >= ETH_GOAL_MIB_S,
        ),
        figure("peak RSS bench process (client)", rss_kib * KIB / 1e6, "MB"),
    ]
    sims = [r["sim_rss_kib"] for r in [*can_rows, eth] if "sim_rss_kib" in r]
    peak = max(sims) * KIB / 1e6 if sims else None
    out.append(figure("peak RSS simulator process", peak, "MB"))
    return out


def report(
    can_rows: list[dict[str, Any]],
    eth: dict[str, Any],
    figs: list[dict[str, Any]],
    info: dict[str, Any],
    top: dict[str, Any],
) -> None:
    """Print the runs, the goals, and the profile when there is one."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = 160
    console.print(
        f"Simulator benchmark - {info['cpu']}, {info['cores']} cores, Python {info['python']}"
    )
    can = Table(
        "ECU",
        "bus",
        "STmin",
        "BS",
        "block",
        "image",
        "blocks",
        "req s",
        "ans s",
        "write s",
        "expected s",
        "measured s",
        "over ms/blk",
        "ratio",
        "check",
        title="CAN at time-scale 1: ISO-TP arithmetic (sim.timing) vs wall time of download()",
    )
    for r in can_rows:
        parts = [r[f"expected_{k}_s"] for k in ("requests", "answers", "write")]
        measured = (
            [
                f"{r['measured_s']:.2f}",
                f"{r['overhead_us_per_block'] / 1000:.2f}",
                f"{r['ratio']:.3f}",
            ]
            if "error" not in r
            else [""] * 3
        )
        can.add_row(
            f"{r['ecu']} 0x{r['address']:02X}",
            f"{r['bus']} {r['bitrate'] // 1000}k",
            f"{r['stmin_ms']:g} ms",
            str(r["block_size"]),
            str(r["max_block_length"] - 2),
            _label(r["size"]),
            str(r["expected_blocks"]),
            *(f"{p:.3f}" for p in parts),
            f"{r['expected_s']:.2f}",
            *measured,
            f"[red]{r['error']}" if "error" in r else "ok",
        )
    console.print(can)
    eth_table = Table(
        "ECU",
        "bus",
        "block",
        "image",
        "model s",
        "measured s",
        "model MiB/s",
        "MiB/s",
        "over µs/blk",
        "sim CPU µs/blk",
        "client CPU µs/blk",
        "check",
        title=f"Ethernet at time-scale {eth['time_scale']:g}",
    )
    ok = "error" not in eth
    eth_table.add_row(
        f"{eth['ecu']} 0x{eth['address']:02X}",
        f"{eth['bus']} {eth['bitrate'] // 1_000_000}M",
        str(eth["max_block_length"] - 2),
        _label(eth["size"]),
        f"{eth['expected_s']:.3f}",
        *(
            [
                f"{eth['measured_s']:.3f}",
                f"{eth['model_mib_s']:.1f}",
                f"{eth['mib_s']:.1f}",
                f"{eth['overhead_us_per_block']:,.0f}",
                f"{eth['sim_cpu_us_per_block']:,.0f}",
                f"{eth['client_cpu_us_per_block']:,.0f}",
            ]
            if ok
            else [""] * 6
        ),
        f"[red]{eth['error']}" if not ok else "ok",
    )
    console.print(eth_table)
    print_goals(console, info, figs, also=("peak RSS",), value_format="{:,.3f}")
    if top:
        views = (
            ("by_own", "every function by own time"),
            ("sim_by_cum", "ecuworks.sim by cumulative time"),
        )
        for key, view in views:
            console.print(
                f"simulator CPU during the Ethernet download: {top['cpu_s']:.2f} s "
                f"(cProfile), {view}"
            )
            prof = Table("function", "calls", "own s", "own %", "cum s", "cum %")
            for t in top[key]:
                prof.add_row(
                    t["function"],
                    str(t["calls"]),
                    f"{t['own_s']:.3f}",
                    f"{100 * t['own_share']:.1f}",
                    f"{t['cum_s']:.3f}",
                    f"{100 * t['cum_share']:.1f}",
                )
            console.print(prof)


def run_all(quick: bool, profile: bool) -> dict[str, Any]:
    """Both figures; the profile of the Ethernet run when asked or when it missed."""
    can_profile = load_profile(CAN_VEHICLE)
    can_rows = []
    for stmin_ms, (full, small) in CAN_SIZES.items():
        address = pick_can_ecu(can_profile, stmin_ms)
        if address is None:
            continue  # the profile has no such ECU
        print(f"CAN: ECU 0x{address:02X}, STmin {stmin_ms:g} ms ...", flush=True)
        can_rows.append(run_case(CAN_VEHICLE, address, small if quick else full, 1.0))
    eth_address = pick_ecu_by_name(load_profile(ETH_VEHICLE), ETH_ECU_NAME)
    eth_size = ETH_QUICK_SIZE if quick else ETH_SIZE
    print(f"Ethernet: ECU 0x{eth_address:02X} at time-scale {ETH_TIME_SCALE:g} ...", flush=True)
    eth = run_case(ETH_VEHICLE, eth_address, eth_size, ETH_TIME_SCALE)
    top: dict[str, Any] = {}
    missed = "error" not in eth and eth["mib_s"] < ETH_GOAL_MIB_S
    if profile or (missed and not quick):
        print("Ethernet again, with the simulator under cProfile ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            dump = Path(tmp) / "sim.prof"
            profiled = run_case(ETH_VEHICLE, eth_address, eth_size, ETH_TIME_SCALE, profile_to=dump)
            if "error" not in profiled:
                top = profile_top(dump, PROFILE_TOP)
    return {"can": can_rows, "ethernet": eth, "profile": top}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; 0 unless a download failed or delivered wrong data."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small images (smoke test)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write figures")
    parser.add_argument(
        "--profile", action="store_true", help="profile the simulator during the Ethernet run"
    )
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # internal: the simulator process
    args = parser.parse_args(argv)
    if args.serve:
        return serve(json.loads(args.serve))

    info = machine()  # before the run, so that the load average is other processes' load
    runs = run_all(args.quick, args.profile)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    figs = figures(runs["can"], runs["ethernet"], rss_kib)
    report(runs["can"], runs["ethernet"], figs, info, runs["profile"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": "sim", "machine": info, **runs, "figures": figs}
    args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(f"figures written to {args.json}")
    return 1 if any("error" in r for r in [*runs["can"], runs["ethernet"]]) else 0


if __name__ == "__main__":
    sys.exit(main())
