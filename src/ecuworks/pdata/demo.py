"""``ecuworks pdata demo``: deterministic demo P-Data for the simulated vehicles.

For each vehicle profile it writes one series of a signed TUF repository: ``catalog.json``
(:class:`~ecuworks.pdata.model.SeriesCatalog`) and one image ``units/<SGBM-ID>.bin`` per
flashable unit. The data matches the simulated cars (addresses, variants, HWEL, regions,
secrets, coding bytes) and has four I-levels: the profile's shipment, last and current ones,
which the car ships at, and a newer one in which many units have a higher version, so that
a measures plan to the latest I-level has real work.

Everything is a function of the profiles: the Ed25519 keys come from fixed seeds, the
metadata carries fixed dates (valid until 2036), payloads are SHAKE-256 streams seeded by
the SGBM-ID, and nothing reads the clock; two runs give byte-identical trees.

Layout of ``out_dir``::

    repository/     the TUF repository (serve it as static files)
    root.json       its trusted root (what a workshop pins)
    keys/           the signing keys: DEMO KEYS, public knowledge, never for real data
    demo-format     DEMO_FORMAT, so that a workstation regenerates a demo an older
                    ecuworks wrote (:func:`demo_format`)
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner

from ecuworks.errors import ConfigError
from ecuworks.pdata._atomic import write_atomic
from ecuworks.pdata.keys import TOP_LEVEL_ROLES, KeyRing
from ecuworks.pdata.model import (
    BusInfo,
    CodingLayout,
    CodingParameter,
    CodingRecord,
    CodingRule,
    Condition,
    DtcDescription,
    EcuInfo,
    FscApplication,
    ILevelRelease,
    RegionInfo,
    Retrofit,
    Segment,
    SeriesCatalog,
    TargetSvk,
    TargetUnit,
    UnitInfo,
)
from ecuworks.pdata.repository import RepositoryBuilder
from ecuworks.profiles import EcuProfile, VehicleProfile, load_profile, parse_ecu
from ecuworks.wire.ilevel import ILevel
from ecuworks.wire.sgbm import ProcessClass, SgbmId
from ecuworks.wire.unit_image import HEADER_SIZE, UnitHeader
from ecuworks.wire.vo import VehicleOrder

__all__ = [
    "DEMO_FORMAT",
    "DEMO_FORMAT_FILE",
    "DEMO_VEHICLES",
    "DemoResult",
    "demo_format",
    "demo_keys",
    "generate_demo",
]

DEMO_VEHICLES = ("e-series", "f-series", "g-series")
DEMO_FORMAT = 2
"""What this generator writes. Bump it whenever the demo's content changes (a new catalog
field, other images, changed shipped profiles), so that a workstation's demo written by an
older ecuworks is regenerated instead of silently disagreeing with the simulator.
History: 1 (no marker file), 2 ECU metadata lists the individual data DIDs."""
DEMO_FORMAT_FILE = "demo-format"
# Fixed times: publishing "now" and the expiry of every role.
_NOW = datetime(2026, 1, 1, tzinfo=UTC)
_EXPIRES = datetime(2036, 1, 1, tzinfo=UTC)
_CHUNK = 1 << 16
_KEYS_README = (
    "These are the DEMO signing keys of the ecuworks demo P-Data. They are derived from "
    "fixed public seeds: anyone can sign with them. Never trust them for real data.\n"
)
# Probability (in 1/256) that a unit of a class changes from one I-level to the next.
_CHANGE = {"SWFL": 150, "SWFF": 120, "BTLD": 60, "GWTB": 200, "IBAD": 90, "CAFD": 140}
# The newest I-level comes this many months and builds after the profile's current one.
_LATEST_MONTHS = 4
_LATEST_BUILDS = 20

# The DTCs the simulated cars carry, as a technician reads them.
_DTC_TEXTS = {
    0x12A5B0: "DME: intake camshaft adjustment, plausibility (stored intermittently)",
    0x2A8700: "DME: oxygen sensor before catalytic converter, heater circuit",
    0x480A12: "DSC: wheel speed sensor rear left, signal implausible",
    0x5E2012: "DSC: supply voltage low during start",
    0x801C20: "KOMBI: outside temperature sensor, signal missing",
    0x930B23: "ACSM: passenger seat occupancy detection, calibration missing",
    0xB7F33F: "HU: navigation map data outdated",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class _RetrofitSpec:
    option: str
    name: str
    ecu: Mapping[str, Any]


def _retrofit_ecu(
    tt: str, address: int, name: str, variant: str, *, bus: str, vehicle: str, can: bool
) -> dict[str, Any]:
    """An ``[[ecus]]`` table for a part a retrofit installs (unit ids: 00 TT AA CI)."""
    aa = f"{address:02X}"
    secret = hashlib.sha256(f"ecuworks/{vehicle}/{name}/security".encode()).digest()[:16]
    coding = hashlib.sha256(f"ecuworks/{vehicle}/{name}/coding".encode()).digest()
    return {
        "address": address,
        "name": name,
        "variant": variant,
        "bus": bus,
        "hardware": f"HWEL-00{tt}{aa}10-001.004.002",
        "cafd": [f"CAFD-00{tt}{aa}50-001.002.003"],
        "max_block_length": 0x0802 if can else 0x8002,
        "erase_ms_per_kib": 6.0,
        "write_kib_s": 300.0,
        "boot_ms": 900.0,
        "security_secret": secret.hex(),
        "coding": {"0x3000": coding[:4].hex(), "0x3001": coding[4:7].hex()},
        "regions": [
            {
                "class": "BTLD",
                "address": 0,
                "size": "256 KiB",
                "unit": f"BTLD-00{tt}{aa}60-002.001.004",
            },
            {
                "class": "SWFL",
                "address": 0x0100_0000,
                "size": "2 MiB" if can else "16 MiB",
                "unit": f"SWFL-00{tt}{aa}80-003.002.001",
            },
        ],
    }


# One retrofit per vehicle, each installing an ECU the car does not have.
_RETROFITS: Mapping[str, _RetrofitSpec] = {
    "e-series": _RetrofitSpec(
        option="$3AG",
        name="Rear view camera",
        ecu=_retrofit_ecu("E9", 0x71, "RFK", "RFK_E090", bus="d-can", vehicle="e-series", can=True),
    ),
    "f-series": _RetrofitSpec(
        option="$610",
        name="Head-up display",
        ecu=_retrofit_ecu("F3", 0x66, "HUD", "HUD_F030", bus="enet", vehicle="f-series", can=False),
    ),
    "g-series": _RetrofitSpec(
        option="$3AC",
        name="Trailer tow hitch",
        ecu=_retrofit_ecu(
            "20", 0x74, "AHM", "AHM_G020", bus="k-can3", vehicle="g-series", can=True
        ),
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoResult:
    """What :func:`generate_demo` wrote.

    Attributes:
        repo_dir: the TUF repository.
        root_path: its trusted root.
        keys_dir: the demo signing keys.
        series: the series written, by vehicle profile name.
        files: number of files in the repository.
        total_bytes: bytes of those files.
    """

    repo_dir: Path
    root_path: Path
    keys_dir: Path
    series: Mapping[str, str]
    files: int
    total_bytes: int


def demo_keys(roles: Sequence[str]) -> KeyRing:
    """Return the demo key ring: Ed25519 keys from the fixed seeds ``ecuworks-demo/<role>``."""
    signers = {}
    for role in roles:
        seed = hashlib.sha256(b"ecuworks-demo/" + role.encode()).digest()
        signers[role] = (CryptoSigner(Ed25519PrivateKey.from_private_bytes(seed)),)
    return KeyRing(signers)


def generate_demo(
    out_dir: Path, *, vehicles: Sequence[str] = DEMO_VEHICLES, size_scale: float | None = None
) -> DemoResult:
    """Write the demo P-Data of ``vehicles`` into ``out_dir`` (layout: module docstring).

    Args:
        out_dir: where to write; must not hold a repository already.
        vehicles: profile names (or paths) to make P-Data for.
        size_scale: overrides the profiles' region size scale.

    Returns:
        What was written.

    Raises:
        ConfigError: ``out_dir`` already holds a repository, or a profile cannot be used.
    """
    out_dir = Path(out_dir)
    repo_dir = out_dir / "repository"
    if (repo_dir / "timestamp.json").exists():
        raise ConfigError(f"{repo_dir} already holds a repository; pick an empty directory")
    profiles = [load_profile(v, size_scale=size_scale) for v in vehicles]
    keys = demo_keys([*TOP_LEVEL_ROLES, *(p.series for p in profiles)])
    lifetime = _EXPIRES - _NOW
    builder = RepositoryBuilder(
        repo_dir,
        keys,
        expires=dict.fromkeys(("root", "targets", "series", "snapshot", "timestamp"), lifetime),
        now=_NOW,
    )
    for profile in profiles:
        _add_series(builder, profile)
    builder.publish()
    write_atomic(out_dir / "root.json", (repo_dir / "1.root.json").read_bytes())
    keys_dir = out_dir / "keys"
    keys.save(keys_dir)
    write_atomic(keys_dir / "README", _KEYS_README.encode())
    # Last, so that a demo with this marker is a whole one.
    write_atomic(out_dir / DEMO_FORMAT_FILE, f"{DEMO_FORMAT}\n".encode())
    files = [p for p in repo_dir.rglob("*") if p.is_file()]
    return DemoResult(
        repo_dir=repo_dir,
        root_path=out_dir / "root.json",
        keys_dir=keys_dir,
        series={p.name: p.series for p in profiles},
        files=len(files),
        total_bytes=sum(p.stat().st_size for p in files),
    )


def demo_format(out_dir: Path) -> int | None:
    """The format of the demo in ``out_dir``: its marker's number, 1 for a demo from
    before the marker, None if no demo was written there.

    A marker that cannot be read counts as format 0 (an unknown, older one).
    """
    out_dir = Path(out_dir)
    if not (out_dir / "repository" / "timestamp.json").is_file():
        return None
    try:
        text = (out_dir / DEMO_FORMAT_FILE).read_text(encoding="ascii")
    except FileNotFoundError:
        return 1
    except (OSError, UnicodeDecodeError):
        return 0
    try:
        return int(text.strip())
    except ValueError:
        return 0


# -- the catalog -------------------------------------------------------------------------


def _add_series(builder: RepositoryBuilder, profile: VehicleProfile) -> None:
    """Build one series' catalog and images and add them to the repository."""
    spec = _RETROFITS.get(profile.name)
    ecus = list(profile.ecus)
    if spec is not None:
        ecus.append(parse_ecu(spec.ecu, size_scale=profile.size_scale, source="retrofit"))
    levels = _levels(profile)
    forced = {profile.gateway_address, 0x12} | ({spec.ecu["address"]} if spec else set())
    versions = _Versions(profile.series, levels)
    vo = VehicleOrder.parse(profile.vo)
    releases = []
    units: dict[str, tuple[EcuProfile, int]] = {}  # sgbm -> (ecu, region index)
    for k, level in enumerate(levels):
        targets = []
        for ecu in ecus:
            for hardware, id_offset in _hardware_variants(ecu):
                entries = [TargetUnit(sgbm=hardware)]
                for i, region in enumerate(ecu.regions):
                    base = SgbmId.parse(region.unit)
                    if id_offset and base.process_class is ProcessClass.SWFL:
                        base = replace(base, unit_id=base.unit_id + id_offset)
                    unit = versions.at(base, k, forced=ecu.address in forced)
                    units[str(unit)] = (ecu, i)
                    entries.append(TargetUnit(sgbm=str(unit), when=_condition_of(ecu, i)))
                for cafd in ecu.cafd:
                    unit = versions.at(SgbmId.parse(cafd), k, forced=ecu.address in forced)
                    entries.append(TargetUnit(sgbm=str(unit)))
                targets.append(
                    TargetSvk(variant=ecu.variant, hardware=hardware, units=tuple(entries))
                )
        date = f"20{level.year:02d}-{level.month:02d}-15"
        releases.append(ILevelRelease(ilevel=str(level), date=date, targets=tuple(targets)))
    infos = []
    for sgbm in sorted(units):
        ecu, index = units[sgbm]
        infos.append(_add_image(builder, profile.series, SgbmId.parse(sgbm), ecu, index))
    catalog = SeriesCatalog(
        series=profile.series,
        vehicle=profile.name,
        size_scale=profile.size_scale,
        ilevels=tuple(releases),
        ecus=tuple(_ecu_info(e) for e in ecus),
        units=tuple(infos),
        coding_rules=tuple(r for e in ecus for r in _coding_rules(e, vo, spec)),
        fsc=_fsc(ecus, spec),
        retrofits=() if spec is None else (_retrofit(spec, profile),),
        dtcs=tuple(
            DtcDescription(code=c, text=_DTC_TEXTS.get(c, f"fault memory entry 0x{c:06X}"))
            for c in sorted({d for e in ecus for d in e.dtcs})
        ),
        buses=tuple(
            BusInfo(name=b.name, kind=b.kind, bitrate=b.bitrate, data_bitrate=b.data_bitrate)
            for b in profile.buses
        ),
    )
    builder.add_target(
        profile.series,
        "catalog.json",
        catalog.to_bytes(),
        custom={"kind": "catalog", "schema": 1, "release": 1},
    )


def _levels(profile: VehicleProfile) -> list[ILevel]:
    """The profile's three I-levels, then a newer one."""
    current = ILevel.parse(profile.ilevel_current)
    month = current.month + _LATEST_MONTHS
    latest = ILevel(
        series=current.series,
        year=current.year + (month - 1) // 12,
        month=(month - 1) % 12 + 1,
        build=min(current.build + _LATEST_BUILDS, 999),
    )
    texts = (profile.ilevel_shipment, profile.ilevel_last, profile.ilevel_current)
    older = sorted({ILevel.parse(t).sort_key: ILevel.parse(t) for t in texts}.items())
    return [level for _, level in older] + [latest]


class _Versions:
    """Unit versions per I-level: the profile's at its current I-level, lower before,
    higher at the newest where the unit changes (decided by a hash, so deterministic)."""

    def __init__(self, series: str, levels: list[ILevel]) -> None:
        self._series = series
        self._current = len(levels) - 2

    def _changes(self, unit: SgbmId, k: int) -> bool:
        """Whether the unit changes going to level ``k`` from ``k - 1``."""
        key = f"{self._series}/{unit.process_class.name}-{unit.unit_id:08X}/{k}"
        return hashlib.sha256(key.encode()).digest()[0] < _CHANGE.get(unit.process_class.name, 0)

    def at(self, unit: SgbmId, k: int, *, forced: bool) -> SgbmId:
        """The unit's version at level index ``k``, from its version at the current one."""
        version = unit
        for step in range(self._current + 1, k + 1):
            if self._changes(unit, step) or (
                forced and unit.process_class is not ProcessClass.BTLD
            ):
                version = _bump(version)
        for step in range(self._current, k, -1):
            if self._changes(unit, step):
                version = _unbump(version)
        return version


def _bump(unit: SgbmId) -> SgbmId:
    value = min((unit.main << 16 | unit.sub << 8 | unit.patch) + 1, 0xFFFFFF)
    return replace(unit, main=value >> 16, sub=(value >> 8) & 0xFF, patch=value & 0xFF)


def _unbump(unit: SgbmId) -> SgbmId:
    value = max((unit.main << 16 | unit.sub << 8 | unit.patch) - 1, 0)
    return replace(unit, main=value >> 16, sub=(value >> 8) & 0xFF, patch=value & 0xFF)


def _hardware_variants(ecu: EcuProfile) -> list[tuple[str, int]]:
    """(HWEL, SWFL unit id offset): the engine ECU has a second hardware with its own SWFLs."""
    variants = [(ecu.hardware, 0)]
    if ecu.address == 0x12:
        hw = SgbmId.parse(ecu.hardware)
        alt = replace(hw, unit_id=hw.unit_id + 1, main=1, sub=0, patch=0)
        variants.append((str(alt), 8))
    return variants


def _condition_of(ecu: EcuProfile, index: int) -> Condition | None:
    """The head unit's last SWFL (navigation data) only with option $609."""
    swfl = [i for i, r in enumerate(ecu.regions) if r.process_class == "SWFL"]
    if ecu.name == "HU" and len(swfl) >= 2 and index == swfl[-1]:
        return Condition.has("$609")
    return None


# -- images ------------------------------------------------------------------------------


def _payload_length(unit: SgbmId, region_size: int) -> int:
    """55-95 % of what fits in the region after the header, whole 16-byte lines."""
    room = region_size - HEADER_SIZE
    fraction = 55 + hashlib.sha256(str(unit).encode()).digest()[0] * 40 // 255
    return max(16, room * fraction // 100 // 16 * 16)


def _payload_chunks(unit: SgbmId, length: int) -> Iterator[bytes]:
    """The payload: SHAKE-256 of (SGBM-ID, chunk number), 64 KiB per chunk."""
    seed = b"ecuworks-demo/payload/" + str(unit).encode() + b"/"
    for n, start in enumerate(range(0, length, _CHUNK)):
        size = min(_CHUNK, length - start)
        yield hashlib.shake_256(seed + n.to_bytes(8, "big")).digest(size)


def _add_image(
    builder: RepositoryBuilder, series: str, unit: SgbmId, ecu: EcuProfile, index: int
) -> UnitInfo:
    """Write one unit image (streamed, never whole in memory); return its catalog entry."""
    region = ecu.regions[index]
    length = _payload_length(unit, region.size)
    digest = hashlib.sha256()
    for chunk in _payload_chunks(unit, length):
        digest.update(chunk)
    header = UnitHeader(sgbm=unit, payload_length=length, payload_sha256=digest.digest())
    path = f"units/{unit}.bin"
    target = builder.add_target(
        series,
        path,
        itertools.chain((header.encode(),), _payload_chunks(unit, length)),
        custom={
            "sgbm": str(unit),
            "process_class": unit.process_class.name,
            "hardware": [ecu.hardware],
            "release": 1,
        },
    )
    size = HEADER_SIZE + length
    return UnitInfo(
        sgbm=str(unit),
        path=path,
        size=size,
        sha256=target.hashes["sha256"],
        segments=(Segment(address=region.address, offset=0, length=size),),
    )


# -- ECU metadata, coding, FSC, retrofit -------------------------------------------------


def _ecu_info(ecu: EcuProfile) -> EcuInfo:
    return EcuInfo(
        address=ecu.address,
        name=ecu.name,
        variant=ecu.variant,
        bus=ecu.bus,
        max_block_length=ecu.max_block_length,
        erase_ms_per_kib=ecu.erase_ms_per_kib,
        write_kib_s=ecu.write_kib_s,
        boot_ms=ecu.boot_ms,
        security_algorithm=ecu.security_algorithm,
        security_secret=ecu.security_secret.hex(),
        regions=tuple(
            RegionInfo(process_class=r.process_class, address=r.address, size=r.size)
            for r in ecu.regions
        ),
        coding=_coding_layout(ecu),
        isotp_stmin_ms=ecu.isotp_stmin_ms,
        isotp_block_size=ecu.isotp_block_size,
        individual_data=tuple(sorted(ecu.individual_data)),
    )


def _coding_layout(ecu: EcuProfile) -> CodingLayout:
    """Each coding DID: a feature bit and a 3-bit variant field in byte 0; records of two
    bytes or more end in a sum8 checksum whose seed makes the car's bytes consistent."""
    records = []
    parameters = []
    for did, data in ecu.coding.items():
        if len(data) >= 2:
            seed = (data[-1] - sum(data[:-1])) & 0xFF
            records.append(
                CodingRecord(
                    did=did,
                    length=len(data),
                    checksum="sum8",
                    checksum_at=len(data) - 1,
                    checksum_seed=seed,
                )
            )
        else:
            records.append(CodingRecord(did=did, length=len(data)))
        parameters.append(
            CodingParameter(
                name=f"feature_{did:04x}", did=did, byte=0, mask=0x01, values={"off": 0, "on": 1}
            )
        )
        parameters.append(
            CodingParameter(
                name=f"variant_{did:04x}",
                did=did,
                byte=0,
                mask=0x0E,
                values={f"v{i}": i for i in range(8)},
            )
        )
    return CodingLayout(records=tuple(records), parameters=tuple(parameters))


def _coding_rules(
    ecu: EcuProfile, vo: VehicleOrder, spec: _RetrofitSpec | None
) -> list[CodingRule]:
    """Rules that give the car's own coding bytes for the car's own VO."""
    if not ecu.cafd:
        return []
    cafd = ecu.cafd[0]
    pool = sorted({*vo.options[:8], "$3AG", "$610", "$3AC", "$6NS"})
    rules = []
    for n, (did, data) in enumerate(ecu.coding.items()):
        digest = hashlib.sha256(f"{ecu.variant}/{did}".encode()).digest()
        if spec is not None and ecu.address == spec.ecu["address"]:
            when = Condition.has(spec.option)
        elif ecu.name in ("HU", "CIC") and n == 0:
            when = Condition.has("$609")
        elif n % 2:
            options = (pool[digest[0] % len(pool)], pool[digest[1] % len(pool)])
            when = Condition(any_of=tuple(Condition.has(o) for o in sorted(set(options))))
        else:
            when = Condition(negate=Condition.has(pool[digest[0] % len(pool)]))
        bit = data[0] & 0x01
        if_true = bit if when.matches(vo) else 1 - bit
        names = ("off", "on")
        feature = f"feature_{did:04x}"
        rules.append(
            CodingRule(
                address=ecu.address, cafd=cafd, parameter=feature, value=names[if_true], when=when
            )
        )
        rules.append(
            CodingRule(address=ecu.address, cafd=cafd, parameter=feature, value=names[1 - if_true])
        )
        rules.append(
            CodingRule(
                address=ecu.address,
                cafd=cafd,
                parameter=f"variant_{did:04x}",
                value=f"v{(data[0] & 0x0E) >> 1}",
            )
        )
    return rules


def _fsc(ecus: list[EcuProfile], spec: _RetrofitSpec | None) -> tuple[FscApplication, ...]:
    by_address = {e.address: e for e in ecus}
    head = 0x63 if 0x63 in by_address else ecus[0].address
    telematics = 0x61 if 0x61 in by_address else head
    apps = [
        FscApplication(app_id=0x0041, name="Navigation map update", address=head),
        FscApplication(app_id=0x0050, name="ConnectedDrive services", address=telematics),
        FscApplication(app_id=0x0061, name="Smartphone integration", address=head),
    ]
    if spec is not None:
        apps.append(
            FscApplication(app_id=0x00B0, name=f"{spec.name} function", address=spec.ecu["address"])
        )
    return tuple(apps)


def _retrofit(spec: _RetrofitSpec, profile: VehicleProfile) -> Retrofit:
    address = int(spec.ecu["address"])
    code = [address]
    if profile.gateway_address != address:
        code.append(profile.gateway_address)
    return Retrofit(
        option=spec.option,
        name=spec.name,
        install=(dict(spec.ecu),),
        program=(address,),
        code=tuple(code),
        enable=(0x00B0,),
    )
