"""The vehicle model: buses, ECUs and their flash regions, frozen (ADR 0003, "Profiles").

A :class:`VehicleProfile` is what a simulated car is built from and what the demo P-Data is
generated for. Every object checks itself when built and raises
:class:`~ecuworks.errors.ConfigError` naming the field, so a profile made in code (an entry
point may return one) is held to the same rules as one read from TOML.

Terms (DOMAIN.md): *SGBM-ID* names one unit (``SWFL-0000ABCD-001.002.003``); an ECU's *SVK*
lists its units (hardware, bootloader, software, coding data); *CAFD* is coding data;
*individual data* is what belongs to one car (keys, mileage, adaptations); the *I-level
triple* (current, last, shipment) and the *vehicle order* (VO) are kept in the gateway; an
*FSC* is an enabling code (:mod:`ecuworks.wire.fsc`), signed by the backend's issuer key,
which the vehicle's ECUs trust (``fsc_public_key``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, get_args

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ecuworks.errors import ConfigError, ParseError
from ecuworks.wire.fsc import Fsc
from ecuworks.wire.ilevel import ILevel
from ecuworks.wire.sgbm import ProcessClass, SgbmId
from ecuworks.wire.uds import Did
from ecuworks.wire.vo import VehicleOrder

__all__ = [
    "BUS_KINDS",
    "FLASH_PAGE",
    "TRANSPORTS",
    "BusKind",
    "BusProfile",
    "EcuProfile",
    "RegionProfile",
    "VehicleProfile",
]

BusKind = Literal["ethernet", "can", "canfd", "flexray"]
BUS_KINDS: tuple[str, ...] = get_args(BusKind)
TRANSPORTS = ("doip", "hsfz", "dcan")
# Region addresses and sizes are whole flash pages: erase works on pages, and size_scale
# rounds every scaled region up to one.
FLASH_PAGE = 4096
# Classes that are no flash content: hardware is what the ECU is, CAFDs are coding data
# written with WriteDataByIdentifier in the coding session.
_NOT_FLASHABLE = frozenset({"HWEL", "HWAP", "HWFR", "CAFD"})
# DIDs the simulated ECUs answer themselves (DOMAIN.md, ADR 0003): the gateway's I-level
# triple F1A0, VO F1A1 and battery voltage F1A2, and the standard ones of ecuworks.wire.uds.
_SERVER_DIDS = frozenset({*Did, 0xF1A0, 0xF1A1, 0xF1A2})
# ISO 3779: digits and capitals except I, O and Q.
_VIN = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# HSFZ reserves these 1-byte addresses (DOMAIN.md): functional requests and the tester.
_RESERVED_ADDRESSES = {0xDF: "the functional (broadcast) address", 0xF4: "the HSFZ tester"}


def _sgbm(text: str, what: str, expected: ProcessClass | None = None) -> str:
    """Parse an SGBM-ID of ``what``; return its canonical text."""
    try:
        unit = SgbmId.parse(text)
    except ParseError as exc:
        raise ConfigError(f"{what}: {exc}") from exc
    if expected is not None and unit.process_class is not expected:
        raise ConfigError(
            f"{what}: {unit} is a {unit.process_class.name}, expected {expected.name}"
        )
    return str(unit)


def _finite(value: float, what: str, *, positive: bool = False) -> None:
    """Check a duration or rate: finite, not negative (and not zero if ``positive``)."""
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        need = "a positive" if positive else "a non-negative"
        raise ConfigError(f"{what} must be {need} number, got {value}")


def _did_map(values: Mapping[int, bytes], what: str) -> Mapping[int, bytes]:
    """Check DID -> bytes; return a read-only copy in DID order."""
    for did, data in values.items():
        if not 0 <= did <= 0xFFFF:
            raise ConfigError(f"{what}: DID {did:#x} does not fit in 2 bytes")
        if did in _SERVER_DIDS:
            raise ConfigError(
                f"{what}: DID 0x{did:04X} is answered by the ECU itself "
                "(VIN, SVK, session, programming counter, gateway records); pick another"
            )
        if not isinstance(data, bytes) or not data:
            raise ConfigError(f"{what}: DID 0x{did:04X} needs at least one byte of data")
    return MappingProxyType(dict(sorted(values.items())))


_ED25519_KEY_LENGTH = 32


def _fsc_record(record: bytes, what: str) -> Fsc:
    """Decode one enabling code record; ConfigError naming ``what`` if it does not."""
    if not isinstance(record, bytes):
        raise ConfigError(f"{what}: expected bytes, got {type(record).__name__}")
    try:
        return Fsc.decode(record)
    except ParseError as exc:
        raise ConfigError(f"{what}: {exc}") from exc


def _signed_by(code: Fsc, public_key: bytes) -> bool:
    """Whether ``code``'s Ed25519 signature verifies with ``public_key``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(code.signature, code.signed_bytes())
    except InvalidSignature:
        return False
    return True


def find_overlap(regions: Iterable[tuple[str, int, int]]) -> str | None:
    """Describe the first two overlapping regions, or return None if none overlap.

    Args:
        regions: ``(process_class, address, size)`` of each region.
    """
    previous: tuple[str, int, int] | None = None
    for region in sorted(regions, key=lambda r: (r[1], r[2])):
        if previous is not None and region[1] < previous[1] + previous[2]:
            name, address, size = region
            other, other_address, other_size = previous
            return (
                f"region {name} at 0x{address:08X} ({size} bytes) overlaps region {other} "
                f"at 0x{other_address:08X}-0x{other_address + other_size - 1:08X}"
            )
        previous = region
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class BusProfile:
    """One vehicle bus.

    Attributes:
        name: the bus's name, e.g. ``"pt-can"``; ECUs name it.
        kind: ``ethernet``, ``can``, ``canfd`` or ``flexray``.
        bitrate: bit/s (the arbitration rate for CAN FD).
        data_bitrate: the CAN FD data phase rate; None for every other kind.
    """

    name: str
    kind: BusKind
    bitrate: int
    data_bitrate: int | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ConfigError(f"bus name {self.name!r} must be letters, digits, '.', '_' or '-'")
        if self.kind not in BUS_KINDS:
            raise ConfigError(f"bus {self.name}: kind {self.kind!r} is not one of {BUS_KINDS}")
        if self.bitrate <= 0:
            raise ConfigError(f"bus {self.name}: bitrate must be positive, got {self.bitrate}")
        if self.kind == "canfd":
            if self.data_bitrate is None or self.data_bitrate < self.bitrate:
                raise ConfigError(
                    f"bus {self.name}: a CAN FD bus needs data_bitrate >= bitrate "
                    f"({self.bitrate}), got {self.data_bitrate}"
                )
        elif self.data_bitrate is not None:
            raise ConfigError(
                f"bus {self.name}: data_bitrate applies to CAN FD only, not to {self.kind}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionProfile:
    """One flash region of an ECU and the unit installed in it at the factory.

    Attributes:
        process_class: the class of unit the region holds, e.g. ``"BTLD"`` or ``"SWFL"``.
        address: flash address; a download into the region must start here.
        size: bytes, after the profile's size_scale; whole 4 KiB pages.
        unit: SGBM-ID of the unit installed at the factory (canonical upper case).
    """

    process_class: str
    address: int
    size: int
    unit: str

    def __post_init__(self) -> None:
        where = f"region {self.process_class}"
        if self.process_class not in ProcessClass.__members__:
            raise ConfigError(
                f"{where}: unknown process class (known: {', '.join(ProcessClass.__members__)})"
            )
        if self.process_class in _NOT_FLASHABLE:
            raise ConfigError(f"{where}: {self.process_class} units are not flashed into regions")
        if self.address % FLASH_PAGE or not 0 <= self.address <= 0xFFFF_FFFF:
            raise ConfigError(
                f"{where}: address {self.address:#x} must be a 32-bit multiple of {FLASH_PAGE}"
            )
        if self.size <= 0 or self.size % FLASH_PAGE:
            raise ConfigError(f"{where}: size {self.size} must be a positive multiple of 4096")
        if self.address + self.size > 1 << 32:
            raise ConfigError(
                f"{where}: 0x{self.address:08X} + {self.size} bytes ends beyond 32-bit addresses"
            )
        unit = _sgbm(self.unit, f"{where}: unit", ProcessClass[self.process_class])
        object.__setattr__(self, "unit", unit)

    @property
    def end(self) -> int:
        """First address after the region."""
        return self.address + self.size


@dataclass(frozen=True, slots=True, kw_only=True)
class EcuProfile:
    """One ECU as it left the factory.

    Attributes:
        address: 1-byte diagnostic address (DOMAIN.md); its DoIP logical address too.
        name: short name, e.g. ``"DME"``; unique in a vehicle.
        variant: base variant, e.g. ``"DME_B48"`` (SVTs key ECUs by variant and address).
        bus: the name of the bus it sits on.
        hardware: HWEL SGBM-ID.
        regions: flashable regions, the bootloader (BTLD) first.
        cafd: CAFD SGBM-IDs (coding data).
        max_block_length: maxNumberOfBlockLength it grants in 0x74, counting SID and counter.
        isotp_stmin_ms: STmin it sends in ISO-TP flow control (CAN ECUs); 0-127 ms, or
            0.1-0.9 ms.
        isotp_block_size: ISO-TP block size it sends in flow control; 0 = no limit.
        erase_ms_per_kib: flash erase time per KiB.
        write_kib_s: flash write speed.
        boot_ms: time from reset to answering again.
        security_algorithm: name of the key algorithm for security access 0x27.
        security_secret: the algorithm's secret.
        programming_counter: successful programmings so far (DID 0x2502).
        programming_counter_max: programmings allowed (DID 0x2503); erase is refused there.
        coding: coding DIDs and their coded bytes (read-only).
        individual_data: per-vehicle DIDs: keys, mileage, adaptations (read-only).
        dtcs: 3-byte DTC codes stored at start.
        fsc: enabling code records (93 bytes each) installed at the factory, at most one
            per application id; the vehicle checks that they are for its VIN and signed
            with its ``fsc_public_key``.
    """

    address: int
    name: str
    variant: str
    bus: str
    hardware: str
    regions: tuple[RegionProfile, ...]
    cafd: tuple[str, ...]
    max_block_length: int
    isotp_stmin_ms: float = 0.0
    isotp_block_size: int = 0
    erase_ms_per_kib: float
    write_kib_s: float
    boot_ms: float
    security_algorithm: str = "hmac-sha256"
    security_secret: bytes
    programming_counter: int = 0
    programming_counter_max: int = 1000
    # Mappings do not hash; equal profiles still hash equal without them.
    coding: Mapping[int, bytes] = field(hash=False)
    individual_data: Mapping[int, bytes] = field(hash=False)
    dtcs: tuple[int, ...] = ()
    fsc: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0xFF:
            raise ConfigError(f"address {self.address:#x} must be one byte (0x00-0xFF)")
        if self.address in _RESERVED_ADDRESSES:
            raise ConfigError(
                f"address 0x{self.address:02X} is {_RESERVED_ADDRESSES[self.address]}"
            )
        for attr in ("name", "variant", "bus", "security_algorithm"):
            if not _NAME.fullmatch(getattr(self, attr)):
                raise ConfigError(
                    f"{attr} {getattr(self, attr)!r} must be letters, digits, '.', '_' or '-'"
                )
        object.__setattr__(self, "hardware", _sgbm(self.hardware, "hardware", ProcessClass.HWEL))
        cafd = tuple(
            _sgbm(unit, f"cafd[{i}]", ProcessClass.CAFD) for i, unit in enumerate(self.cafd)
        )
        object.__setattr__(self, "cafd", cafd)
        object.__setattr__(self, "regions", tuple(self.regions))
        self._check_regions()
        if not 3 <= self.max_block_length <= 0xFFFF:
            raise ConfigError(
                f"max_block_length must be 3-0xFFFF (SID, counter and at least one data "
                f"byte), got {self.max_block_length:#x}"
            )
        self._check_isotp()
        _finite(self.erase_ms_per_kib, "erase_ms_per_kib")
        _finite(self.write_kib_s, "write_kib_s", positive=True)
        _finite(self.boot_ms, "boot_ms")
        if not isinstance(self.security_secret, bytes) or not self.security_secret:
            raise ConfigError("security_secret must be at least one byte")
        if not 1 <= self.programming_counter_max <= 0xFFFF:
            raise ConfigError(
                f"programming_counter_max must be 1-65535, got {self.programming_counter_max}"
            )
        if not 0 <= self.programming_counter <= self.programming_counter_max:
            raise ConfigError(
                f"programming_counter {self.programming_counter} must be 0-"
                f"{self.programming_counter_max} (programming_counter_max)"
            )
        object.__setattr__(self, "coding", _did_map(self.coding, "coding"))
        object.__setattr__(
            self, "individual_data", _did_map(self.individual_data, "individual_data")
        )
        both = self.coding.keys() & self.individual_data.keys()
        if both:
            raise ConfigError(
                f"DID 0x{min(both):04X} is both coding and individual_data; it can only be one"
            )
        object.__setattr__(self, "dtcs", tuple(self.dtcs))
        for dtc in self.dtcs:
            if not 0 <= dtc <= 0xFF_FFFF:
                raise ConfigError(f"dtcs: {dtc:#x} is not a 3-byte DTC")
        if len(set(self.dtcs)) != len(self.dtcs):
            raise ConfigError("dtcs: a DTC is listed twice")
        self._check_fsc()
        self._check_svk()

    def _check_fsc(self) -> None:
        """Each record decodes; one per application."""
        object.__setattr__(self, "fsc", tuple(self.fsc))
        apps: set[int] = set()
        for i, record in enumerate(self.fsc):
            code = _fsc_record(record, f"fsc[{i}]")
            if code.app_id in apps:
                raise ConfigError(
                    f"fsc[{i}]: a second code for application 0x{code.app_id:04X}; an ECU "
                    "keeps one per application"
                )
            apps.add(code.app_id)

    def fsc_codes(self) -> tuple[Fsc, ...]:
        """Return :attr:`fsc` decoded."""
        return tuple(Fsc.decode(record) for record in self.fsc)

    def _check_regions(self) -> None:
        """BTLD first and only once; no two regions overlap."""
        if not self.regions or self.regions[0].process_class != "BTLD":
            raise ConfigError("regions: the first region must be the bootloader (BTLD)")
        for i, region in enumerate(self.regions[1:], start=1):
            if region.process_class == "BTLD":
                raise ConfigError(f"regions[{i}]: a second BTLD region; an ECU has one bootloader")
        overlap = find_overlap((r.process_class, r.address, r.size) for r in self.regions)
        if overlap is not None:
            raise ConfigError(overlap)

    def _check_isotp(self) -> None:
        """STmin as ISO 15765-2 can send it (0-127 ms or 100-900 µs); block size one byte."""
        stmin = self.isotp_stmin_ms
        whole_ms = 0 <= stmin <= 127 and stmin == int(stmin)
        sub_ms = 0 < stmin < 1 and abs(stmin * 10 - round(stmin * 10)) < 1e-9
        if not (whole_ms or sub_ms):
            raise ConfigError(
                f"isotp_stmin_ms must be 0-127 (whole ms) or 0.1-0.9, got {stmin} "
                "(ISO 15765-2 flow control STmin)"
            )
        if not 0 <= self.isotp_block_size <= 0xFF:
            raise ConfigError(f"isotp_block_size must be 0-255, got {self.isotp_block_size}")

    def _check_svk(self) -> None:
        """One entry per unit, and no more than an SVK's count byte can hold."""
        seen: set[tuple[ProcessClass, int]] = set()
        svk = self.svk()
        for text in svk:
            unit = SgbmId.parse(text)
            key = (unit.process_class, unit.unit_id)
            if key in seen:
                raise ConfigError(
                    f"unit {unit.process_class.name}-{unit.unit_id:08X} is listed twice"
                )
            seen.add(key)
        if len(svk) > 255:
            raise ConfigError(f"an SVK holds at most 255 units, this ECU has {len(svk)}")

    def svk(self) -> tuple[str, ...]:
        """Return the SVK at start: hardware, the regions' units, then the CAFDs."""
        return (self.hardware, *(r.unit for r in self.regions), *self.cafd)

    @property
    def flash_size(self) -> int:
        """Bytes of all regions together."""
        return sum(r.size for r in self.regions)

    def region(self, process_class: str, index: int = 0) -> RegionProfile:
        """Return the ``index``-th region of a class (``"SWFL"``, 1 for the second one).

        Raises:
            ConfigError: the ECU has no such region.
        """
        matches = [r for r in self.regions if r.process_class == process_class]
        if not 0 <= index < len(matches):
            raise ConfigError(
                f"ECU {self.name} (0x{self.address:02X}) has {len(matches)} {process_class} "
                f"region(s), no {process_class} #{index}"
            )
        return matches[index]

    @property
    def label(self) -> str:
        """``"DME (0x12)"``, as messages name an ECU."""
        return f"{self.name} (0x{self.address:02X})"


@dataclass(frozen=True, slots=True, kw_only=True)
class VehicleProfile:
    """One vehicle: identity, buses and ECUs.

    Attributes:
        name: the profile's name, e.g. ``"f-series"``.
        series: the I-level series, e.g. ``"F030"``.
        vin: 17-character VIN.
        vo: the vehicle order in the canonical text of :class:`~ecuworks.wire.vo.VehicleOrder`.
        ilevel_current: the I-level the vehicle has now.
        ilevel_last: the I-level before the last programming.
        ilevel_shipment: the I-level it left the factory with.
        transports: the tester links it offers: ``doip``, ``hsfz``, ``dcan``.
        gateway_address: the ECU that holds VIN, VO and I-levels and routes requests.
        buses: the vehicle's buses.
        ecus: the vehicle's ECUs.
        size_scale: the factory applied to every region's real size.
        battery_volts: battery voltage at start.
        charger: whether a charger is connected at start.
        vci_firmware: the firmware version the simulated VCI reports.
        fsc_public_key: the Ed25519 public key (32 bytes, raw) whose enabling codes the
            vehicle's ECUs accept; None when they trust none (every code is invalid).
    """

    name: str
    series: str
    vin: str
    vo: str
    ilevel_current: str
    ilevel_last: str
    ilevel_shipment: str
    transports: tuple[str, ...]
    gateway_address: int = 0x10
    buses: tuple[BusProfile, ...]
    ecus: tuple[EcuProfile, ...]
    size_scale: float
    battery_volts: float = 12.6
    charger: bool = False
    vci_firmware: str = "ICOM-NEXT 04.07.1"
    fsc_public_key: bytes | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ConfigError(f"name {self.name!r} must be letters, digits, '.', '_' or '-'")
        if not _VIN.fullmatch(self.vin):
            raise ConfigError(
                f"vin {self.vin!r} must be 17 characters: digits and capitals except I, O, Q"
            )
        try:
            vo = VehicleOrder.parse(self.vo)
        except ParseError as exc:
            raise ConfigError(f"vo: {exc}") from exc
        object.__setattr__(self, "vo", str(vo))
        self._check_ilevels()
        object.__setattr__(self, "transports", tuple(self.transports))
        unknown = [t for t in self.transports if t not in TRANSPORTS]
        if not self.transports or unknown or len(set(self.transports)) != len(self.transports):
            raise ConfigError(
                f"transports {list(self.transports)} must be distinct names from {TRANSPORTS}"
            )
        if not math.isfinite(self.size_scale) or self.size_scale <= 0:
            raise ConfigError(f"size_scale must be a positive number, got {self.size_scale}")
        if not math.isfinite(self.battery_volts) or not 0 <= self.battery_volts <= 30:
            raise ConfigError(f"battery volts must be 0-30, got {self.battery_volts}")
        if not self.vci_firmware.strip():
            raise ConfigError("vci_firmware must not be empty")
        object.__setattr__(self, "buses", tuple(self.buses))
        object.__setattr__(self, "ecus", tuple(self.ecus))
        self._check_buses_and_ecus()
        self._check_fsc()

    def _check_fsc(self) -> None:
        """The factory's enabling codes are ones the ECUs accept: this VIN, trusted key."""
        key = self.fsc_public_key
        if key is not None and (not isinstance(key, bytes) or len(key) != _ED25519_KEY_LENGTH):
            got = f"{len(key)} bytes" if isinstance(key, bytes) else type(key).__name__
            raise ConfigError(
                f"fsc_public_key must be a raw Ed25519 public key of {_ED25519_KEY_LENGTH} "
                f"bytes, got {got}"
            )
        if key is not None:
            try:
                Ed25519PublicKey.from_public_bytes(key)
            except ValueError as exc:
                raise ConfigError(f"fsc_public_key is no Ed25519 public key: {exc}") from exc
        for ecu in self.ecus:
            for i, code in enumerate(ecu.fsc_codes()):
                where = f"{ecu.label}: fsc[{i}] (application 0x{code.app_id:04X})"
                if key is None:
                    raise ConfigError(
                        f"{where}: the vehicle has no fsc_public_key to verify it; add the "
                        "issuer's public key"
                    )
                if not _signed_by(code, key):
                    raise ConfigError(
                        f"{where}: its signature does not verify with fsc_public_key; issue "
                        "it again with the matching private key"
                    )
                if code.vin != self.vin:
                    raise ConfigError(
                        f"{where}: issued for VIN {code.vin}, the vehicle is {self.vin}"
                    )

    def _check_ilevels(self) -> None:
        """Each I-level parses, is of this series, and shipment <= last <= current."""
        levels = []
        for attr in ("ilevel_current", "ilevel_last", "ilevel_shipment"):
            text = getattr(self, attr)
            try:
                level = ILevel.parse(text)
            except ParseError as exc:
                raise ConfigError(f"{attr}: {exc}") from exc
            if level.series != self.series:
                raise ConfigError(
                    f"{attr}: {level} is of series {level.series}, the vehicle is {self.series}"
                )
            object.__setattr__(self, attr, str(level))
            levels.append(level)
        current, last, shipment = levels
        if not shipment <= last <= current:
            raise ConfigError(
                f"ilevel: expected shipment <= last <= current, got shipment {shipment}, "
                f"last {last}, current {current}"
            )

    def _check_buses_and_ecus(self) -> None:
        """Names and addresses unique, every ECU on a known bus, the gateway an ECU."""
        buses: dict[str, BusProfile] = {}
        for i, bus in enumerate(self.buses):
            if bus.name in buses:
                raise ConfigError(f"buses[{i}]: a second bus named {bus.name!r}")
            buses[bus.name] = bus
        if not self.ecus:
            raise ConfigError("ecus: a vehicle needs at least one ECU")
        addresses: dict[int, EcuProfile] = {}
        names: dict[str, EcuProfile] = {}
        for i, ecu in enumerate(self.ecus):
            where = f"ecus[{i}] ({ecu.name}, 0x{ecu.address:02X})"
            if ecu.address in addresses:
                raise ConfigError(
                    f"{where}: address 0x{ecu.address:02X} is already "
                    f"{addresses[ecu.address].label}"
                )
            if ecu.name in names:
                raise ConfigError(f"{where}: name {ecu.name} is already {names[ecu.name].label}")
            if ecu.bus not in buses:
                raise ConfigError(
                    f"{where}: bus {ecu.bus!r} is not one of the vehicle's buses "
                    f"({', '.join(buses) or 'none'})"
                )
            on_can = buses[ecu.bus].kind in ("can", "canfd")
            if not on_can and (ecu.isotp_stmin_ms or ecu.isotp_block_size):
                raise ConfigError(
                    f"{where}: isotp_stmin_ms and isotp_block_size apply to CAN ECUs only, "
                    f"bus {ecu.bus} is {buses[ecu.bus].kind}"
                )
            addresses[ecu.address] = ecu
            names[ecu.name] = ecu
        gateway = addresses.get(self.gateway_address)
        if gateway is None:
            raise ConfigError(
                f"gateway_address 0x{self.gateway_address:02X} is not the address of an ECU"
            )
        ethernet = [t for t in self.transports if t in ("doip", "hsfz")]
        if ethernet and buses[gateway.bus].kind != "ethernet":
            raise ConfigError(
                f"gateway_address 0x{self.gateway_address:02X}: transports {ethernet} need the "
                f"gateway on an ethernet bus, {gateway.label} is on {gateway.bus}"
            )

    def ecu(self, address: int) -> EcuProfile:
        """Return the ECU at a diagnostic address.

        Raises:
            ConfigError: no ECU has that address.
        """
        for ecu in self.ecus:
            if ecu.address == address:
                return ecu
        raise ConfigError(
            f"vehicle {self.name} has no ECU at 0x{address:02X}; its ECUs: "
            + ", ".join(e.label for e in self.ecus)
        )

    def bus(self, name: str) -> BusProfile:
        """Return the bus of that name.

        Raises:
            ConfigError: the vehicle has no bus of that name.
        """
        for bus in self.buses:
            if bus.name == name:
                return bus
        raise ConfigError(
            f"vehicle {self.name} has no bus {name!r}; its buses: "
            + ", ".join(b.name for b in self.buses)
        )

    def ecus_on(self, bus: str) -> tuple[EcuProfile, ...]:
        """Return the ECUs on a bus, in profile order (an unknown bus has none)."""
        return tuple(e for e in self.ecus if e.bus == bus)

    @property
    def gateway(self) -> EcuProfile:
        """The gateway ECU."""
        return self.ecu(self.gateway_address)

    @property
    def flash_size(self) -> int:
        """Bytes of every ECU's regions together."""
        return sum(e.flash_size for e in self.ecus)
