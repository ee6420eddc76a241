"""How long a plan takes: the per-ECU time model, the schedule on shared buses, the bound.

**Per-ECU model**, the simulator's (``sim/ecu.py``, ``sim/ecu_programming.py``,
``sim/gateway.py``), figure for figure:

* Entering the programming session starts the bootloader at once (no boot time); the
  final ``11 01`` reset boots the application: ``boot_ms`` once per flashed ECU, and once
  more after coding, which resets too.
* Erase (routine FF00) erases the whole region the unit's first segment starts at:
  region KiB times ``erase_ms_per_kib``.
* A download is TransferData blocks of ``max_block_length - 2`` data bytes. Each block
  occupies the ECU's bus (the gateway books it: ISO-TP with extended addressing on CAN,
  with the ECU's STmin and block size for requests, none for answers), then the ECU
  writes it (``written bytes / write_kib_s``), then its 2-byte answer crosses the bus;
  the next block follows the answer. Compressed images cross the bus compressed and are
  written decompressed.
* Every other request (session, security, erase and check routines, 0x34, 0x37, reset,
  coding writes) costs :data:`REQUEST_ALLOWANCE_S`, for round trips and tester work.

**Schedule**: the gateway first and alone (everything else is routed through it), then
every other ECU at once. ECUs on one bus, and every ECU on the tester link, share it: a
fluid model in which each ECU's transfer occupies a share of its bus and of the link; a
resource asked for more than it has slows everyone on it proportionally. It never gives a
resource more than its capacity, and never makes an ECU faster than alone, so the
estimate is at least the lower bound (DOMAIN.md) by construction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from ecuworks.pdata.model import BusInfo, EcuInfo, UnitInfo
from ecuworks.profiles.bus_timing import ethernet_transfer_seconds, transfer_seconds

__all__ = [
    "REQUEST_ALLOWANCE_S",
    "STEP_ALLOWANCE_S",
    "TESTER_LINK",
    "EcuWork",
    "Timeline",
    "UnitWork",
    "coding_seconds",
    "default_bus",
    "flash_overhead_seconds",
    "lower_bound",
    "schedule",
    "unit_work",
]

REQUEST_ALLOWANCE_S: Final = 0.01
"""Seconds allowed for each control request beyond its bus time (round trip, tester)."""

# 10 03, 10 02, 27 11 seed, 27 12 key before the first unit; 31 FF01 and 11 01 after the last.
FLASH_SESSION_REQUESTS: Final = 6
# Per unit: 31 FF00 erase, 34, 37, 31 0202.
UNIT_REQUESTS: Final = 4
# 10 41, 27 01 seed, 27 02 key, then one 2E per coding record, then 11 01.
CODING_REQUESTS: Final = 4

TESTER_LINK: Final = BusInfo(name="link", kind="ethernet", bitrate=100_000_000)
"""The tester link of HSFZ/DoIP vehicles: 100BASE-TX at the OBD socket, ≈ 11.9 MB/s."""

STEP_ALLOWANCE_S: Final[Mapping[str, float]] = {
    "energy-mode-flash": 0.2,
    "dtc-setting-off": 0.1,
    "communication-off": 0.1,
    "communication-on": 0.1,
    "dtc-setting-on": 0.1,
    "energy-mode-normal": 0.2,
    "write-ilevel": 0.2,
    "write-vo": 0.2,
    "clear-dtcs": 0.5,
    "read-dtcs": 1.0,
    "final-check": 2.0,
}
"""Seconds allowed per vehicle-wide step (functional requests and a final identification)."""

_CAN_KINDS: Final = ("can", "canfd")
_ANSWER: Final = 2  # 76 counter


def default_bus(name: str) -> BusInfo:
    """A bus the catalog does not describe (older P-Data): guessed from its name, for
    estimates only. ``enet``/``eth`` names are 100BASE-TX, ``flexray`` 10 Mbit/s FlexRay,
    anything else classic CAN at 500 kbit/s (the slowest common choice)."""
    lower = name.lower()
    if "eth" in lower or "enet" in lower:
        return BusInfo(name=name, kind="ethernet", bitrate=100_000_000)
    if "flexray" in lower:
        return BusInfo(name=name, kind="flexray", bitrate=10_000_000)
    return BusInfo(name=name, kind="can", bitrate=500_000)


def _message_seconds(bus: BusInfo, size: int, ecu: EcuInfo, *, to_ecu: bool) -> float:
    """Bus time of one message between gateway and ECU, as ``sim/gateway.py`` books it."""
    if bus.kind in _CAN_KINDS:
        return transfer_seconds(
            bus,
            size,
            stmin_s=ecu.isotp_stmin_ms / 1000 if to_ecu else 0.0,
            block_size=ecu.isotp_block_size if to_ecu else 0,
            addressing="extended",
        )
    return transfer_seconds(bus, size)


def _download_seconds(bus: BusInfo, ecu: EcuInfo, size: int) -> float:
    """Bus time of every TransferData block of ``size`` bytes, and of their answers."""
    block = max(ecu.max_block_length, 3)
    full, last = divmod(size, block - 2)
    answer = _message_seconds(bus, _ANSWER, ecu, to_ecu=False)
    seconds = full * (_message_seconds(bus, block, ecu, to_ecu=True) + answer)
    if last:
        seconds += _message_seconds(bus, last + 2, ecu, to_ecu=True) + answer
    return seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitWork:
    """What flashing one unit costs its ECU, alone.

    Attributes:
        bytes: bytes that cross the bus (compressed when compressed).
        erase_s: erasing the unit's region.
        bus_s: bus time of the blocks and their answers on the ECU's bus.
        link_s: time the same bytes take on the tester link.
        write_s: writing the image into flash.
    """

    bytes: int
    erase_s: float
    bus_s: float
    link_s: float
    write_s: float

    @property
    def seconds(self) -> float:
        """The unit alone: its requests, erase, then block after block."""
        return UNIT_REQUESTS * REQUEST_ALLOWANCE_S + self.erase_s + self.bus_s + self.write_s


def unit_work(ecu: EcuInfo, bus: BusInfo, unit: UnitInfo, link: BusInfo) -> UnitWork:
    """Cost one unit's flashing on ``ecu`` sitting on ``bus`` behind tester ``link``.

    The erased region is the one that starts at the unit's first segment (the simulator
    erases whole regions); a unit starting elsewhere is erased as large as the image.
    """
    start = unit.segments[0].address
    region = next((r.size for r in ecu.regions if r.address == start), unit.size)
    size = unit.compressed.size if unit.compressed is not None else unit.size
    if link.name == bus.name:
        link_s = _download_seconds(bus, ecu, size)
    elif link.kind in _CAN_KINDS:
        link_s = _download_seconds(link, ecu, size)
    else:
        link_s = ethernet_transfer_seconds(size, link.bitrate)
    return UnitWork(
        bytes=size,
        erase_s=region / 1024 * ecu.erase_ms_per_kib / 1000,
        bus_s=_download_seconds(bus, ecu, size),
        link_s=link_s,
        write_s=unit.size / (ecu.write_kib_s * 1024),
    )


def flash_overhead_seconds(ecu: EcuInfo) -> float:
    """Once per flashed ECU: session and security requests, check, reset and boot."""
    return FLASH_SESSION_REQUESTS * REQUEST_ALLOWANCE_S + ecu.boot_ms / 1000


def coding_seconds(ecu: EcuInfo) -> float:
    """Coding one ECU: coding session, security, one write per record, reset and boot."""
    requests = CODING_REQUESTS + len(ecu.coding.records)
    return requests * REQUEST_ALLOWANCE_S + ecu.boot_ms / 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class EcuWork:
    """Everything one ECU does in the plan, for the schedule.

    Attributes:
        address: diagnostic address.
        name: short name, ``"DME"``.
        bus: the bus it sits on.
        units: its flash units, in order.
        fixed_s: what is not a unit: flash session overhead, coding.
    """

    address: int
    name: str
    bus: BusInfo
    units: tuple[UnitWork, ...] = ()
    fixed_s: float = 0.0

    @property
    def label(self) -> str:
        """``"DME (0x12)"``, as messages name an ECU."""
        return f"{self.name} (0x{self.address:02X})"

    @property
    def alone_s(self) -> float:
        """Its duration with its bus and the link to itself."""
        return self.fixed_s + sum(u.seconds for u in self.units)

    @property
    def bound_s(self) -> float:
        """DOMAIN.md's term (c): fixed overhead + erase + max(bus time, write time)."""
        erase = sum(u.erase_s for u in self.units)
        bus = sum(u.bus_s for u in self.units)
        write = sum(u.write_s for u in self.units)
        return self.fixed_s + erase + max(bus, write)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    """The schedule's result.

    Attributes:
        slots: address -> (start, end) in seconds.
        makespan_s: when the last ECU ends.
    """

    slots: Mapping[int, tuple[float, float]] = field(default_factory=dict)
    makespan_s: float = 0.0


class _Job:
    """One ECU in the fluid simulation: phases of (seconds alone, resource shares)."""

    __slots__ = ("address", "phases", "remaining", "start")

    def __init__(self, work: EcuWork, link_key: str) -> None:
        self.address = work.address
        self.start = 0.0
        bus_s = sum(u.bus_s for u in work.units)
        link_s = sum(u.link_s for u in work.units)
        transfer = bus_s + sum(u.write_s for u in work.units)
        local = sum(UNIT_REQUESTS * REQUEST_ALLOWANCE_S + u.erase_s for u in work.units)
        # Erases and requests move before the transfers: the same total alone, and each
        # phase keeps one set of shares, so the simulation has few events.
        phases: list[tuple[float, dict[str, float]]] = [(local, {}), (work.fixed_s, {})]
        if transfer > 0:
            shares = {work.bus.name: bus_s / transfer}
            shares[link_key] = max(shares.get(link_key, 0.0), link_s / transfer)
            phases.insert(1, (transfer, shares))
        self.phases = [p for p in phases if p[0] > 0]
        self.remaining = self.phases[0][0] if self.phases else 0.0

    def shares(self) -> dict[str, float]:
        return self.phases[0][1]


def schedule(works: Sequence[EcuWork], gateway: int, link: BusInfo) -> Timeline:
    """Run the fluid simulation: the gateway first and alone, then all others at once.

    Args:
        works: every ECU with work.
        gateway: the gateway's address; if it has no work, the others start at 0.
        link: the tester link (:data:`TESTER_LINK`, or the gateway's CAN bus); each unit's
            ``link_s`` was computed for it.
    """
    key = link.name
    jobs = {w.address: _Job(w, key) for w in works}
    slots: dict[int, tuple[float, float]] = {}
    now = 0.0
    first = [jobs.pop(gateway)] if gateway in jobs else []
    waiting = list(jobs.values())
    active = first or waiting
    if not first:
        waiting = []
    while active or waiting:
        if not active:
            for job in waiting:
                job.start = now
            active, waiting = waiting, []
        for job in [j for j in active if not j.phases]:
            slots[job.address] = (job.start, now)
            active.remove(job)
        if not active:
            continue
        load: dict[str, float] = {}
        for job in active:
            for name, share in job.shares().items():
                load[name] = load.get(name, 0.0) + share
        rates = [
            min([1.0, *(1.0 / load[n] for n in job.shares() if load[n] > 1.0)]) for job in active
        ]
        step = min(job.remaining / rate for job, rate in zip(active, rates, strict=True))
        now += step
        for job, rate in zip(active, rates, strict=True):
            job.remaining -= rate * step
            if job.remaining <= 1e-9 * max(1.0, job.phases[0][0]):
                job.phases.pop(0)
                job.remaining = job.phases[0][0] if job.phases else 0.0
    return Timeline(slots=slots, makespan_s=max((end for _, end in slots.values()), default=0.0))


def lower_bound(works: Sequence[EcuWork], gateway: int) -> dict[str, float]:
    """DOMAIN.md's lower bound, term by term (seconds).

    ``bus NAME``: every byte on that bus at its rate (a); ``link``: every byte on the
    tester link (b); ``ecu 0xAA NAME``: one ECU alone at best, its bus and flash overlapped
    (c); ``chain GW → X``: the gateway, then the slowest other ECU (d).
    """
    terms: dict[str, float] = {}
    for work in works:
        name = f"bus {work.bus.name}"
        terms[name] = terms.get(name, 0.0) + sum(u.bus_s for u in work.units)
    # On a CAN tester link, the ECUs on the gateway's bus have link_s = bus_s: one resource.
    terms["link"] = sum(u.link_s for w in works for u in w.units)
    for work in sorted(works, key=lambda w: w.address):
        terms[f"ecu 0x{work.address:02X} {work.name}"] = work.bound_s
    first = next((w for w in works if w.address == gateway), None)
    others = [w for w in works if w.address != gateway]
    if first is not None and others:
        slowest = max(others, key=lambda w: w.bound_s)
        terms[f"chain {first.name} → {slowest.name}"] = first.bound_s + slowest.bound_s
    return terms
