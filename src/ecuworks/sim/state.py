"""The simulated vehicle's runtime state: what it is now, as opposed to what it was built as.

A :class:`~ecuworks.profiles.VehicleProfile` is the frozen factory definition; a
:class:`VehicleState` starts as a copy of it and then changes as testers program, code and
replace ECUs, and as the control API moves the battery. It is plain mutable data: the ECU
servers (``sim/ecu.py``) change it, the control API shows it as ``GET /state``, and
``--state FILE`` keeps it across restarts (:meth:`VehicleState.save` /
:meth:`VehicleState.load`, atomic, so a crash mid-save leaves the previous file intact).

``to_json`` gives DESIGN.md's ``/state`` shape with every key it lists, plus what a restart
needs to come back identical (docs/adr/0003): the vehicle's ``name``, ``energy_mode`` and
``gateway_address``; ``vo.text`` (the whole vehicle order, of which ``type_key`` and
``options`` are a view); and per ECU ``variant``, ``hardware``, ``session``, ``regions``
(with each region's ``unit`` and ``valid``), ``cafd``, ``individual_data``,
``programming_counter_max``, ``application_valid``, ``dtc_status`` and ``timing``.
Enabling codes: per ECU ``fsc``, the status of every application written or installed
(``{"app_id": 65, "upgrade_index": 1, "status": "accepted"}``), and ``fsc_records``, the
accepted records it stores (hex); the vehicle's ``fsc_public_key`` (hex, or null), the
issuer key its ECUs trust. All three are optional when loading (older state files).
``svk`` and ``flash_regions`` are derived and ignored by :meth:`VehicleState.from_json`.

JSON encodings: addresses and sizes are integers; DIDs are 4 upper-case hex digits
(``"3000"``); byte strings (secrets, coding and individual data records) are lower-case hex;
DTCs are 6 upper-case hex digits (``"A1B2C3"``) with their status byte in ``dtc_status``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from ecuworks.errors import ConfigError, ParseError
from ecuworks.sim.fsc import judge
from ecuworks.wire.fsc import Fsc, FscStatus, FscStatusEntry
from ecuworks.wire.sgbm import SgbmId
from ecuworks.wire.vo import VehicleOrder

if TYPE_CHECKING:
    from ecuworks.profiles import EcuProfile, VehicleProfile

__all__ = [
    "DEFAULT_DTC_STATUS",
    "MAX_DTCS",
    "MODES",
    "Battery",
    "EcuState",
    "Mode",
    "RegionState",
    "VehicleState",
]

Mode = Literal["application", "bootloader", "bricked", "off"]
MODES: tuple[Mode, ...] = ("application", "bootloader", "bricked", "off")

# Status of a DTC stored at the factory: testFailed (bit 0) | confirmedDTC (bit 3), the
# statusOfDTC bits of ISO 14229-1 ReadDTCInformation.
DEFAULT_DTC_STATUS = 0x09
# Most DTCs one ECU stores: its whole report (3 + 4 bytes per DTC) still fits one classic
# ISO-TP message (4095 bytes, ISO 15765-2), so every transport can carry it.
MAX_DTCS = 1000

_DEFAULT_SESSION = 0x01
_BTLD = "BTLD"
_CAFD = "CAFD"


@dataclass(slots=True, kw_only=True)
class Battery:
    """The vehicle's 12 V battery as the control API sets it.

    Attributes:
        volts: the battery's voltage as set (resting, no load).
        charger: whether a charger is connected.
        terminal_volts: the voltage at the ECUs now (charger, load, sags), kept up to date
            by the runtime; None until it does. A measurement, not state: it is not part of
            the JSON and not compared.
    """

    volts: float
    charger: bool
    terminal_volts: float | None = field(default=None, compare=False)

    @property
    def supply_volts(self) -> float:
        """What the ECUs measure: :attr:`terminal_volts` when known, else :attr:`volts`."""
        return self.volts if self.terminal_volts is None else self.terminal_volts


@dataclass(slots=True, kw_only=True)
class RegionState:
    """One flash region and the unit the ECU believes it holds.

    Attributes:
        process_class: the class of unit the region takes (``"BTLD"``, ``"SWFL"`` ...).
        address: start address; a download must start here.
        size: bytes.
        unit: SGBM-ID text of the unit written there, or None when erased (blank).
        valid: whether the unit is complete and its payload matches its header's hash.
    """

    process_class: str
    address: int
    size: int
    unit: str | None
    valid: bool

    def erase(self) -> None:
        """Forget the unit: the region is blank and not valid."""
        self.unit = None
        self.valid = False


@dataclass(slots=True, kw_only=True)
class EcuState:
    """One ECU as it is now.

    Attributes:
        address: 1-byte diagnostic address.
        name: short name (``"DME"``).
        variant: base variant (``"DME_B48"``).
        bus: the name of the bus it sits on.
        hardware: HWEL SGBM-ID text.
        regions: flash regions, BTLD first.
        cafd: CAFD SGBM-ID texts.
        mode: ``application``, ``bootloader``, ``bricked`` or ``off``.
        session: active diagnostic session (UDS session byte).
        programming_counter: successful programmings so far (DID 0x2502).
        programming_counter_max: the most it allows (DID 0x2503); erase is refused there.
        application_valid: the last check of programming dependencies (routine FF01)
            passed and no region was erased since.
        security_algorithm: key algorithm name (``"hmac-sha256"``).
        security_secret: the algorithm's secret.
        coding: coding DIDs and their records.
        individual_data: per-vehicle DIDs (keys, mileage, adaptations) and their records.
        dtcs: stored DTCs as ``(3-byte code, status byte)``.
        max_block_length: maxNumberOfBlockLength it grants in 0x74.
        erase_ms_per_kib: flash erase time per KiB.
        write_kib_s: flash write speed.
        boot_ms: time from reset until it answers again.
        isotp_stmin_ms: STmin it sends in ISO-TP flow control (CAN ECUs).
        isotp_block_size: block size it sends in ISO-TP flow control (CAN ECUs).
        fsc_records: the accepted enabling code records it stores, by application id.
        fsc_status: per application id, the upgrade index and verdict of the latest code
            written (or installed at the factory).
    """

    address: int
    name: str
    variant: str
    bus: str
    hardware: str
    regions: list[RegionState]
    cafd: list[str]
    mode: Mode = "application"
    session: int = _DEFAULT_SESSION
    programming_counter: int = 0
    programming_counter_max: int = 1000
    application_valid: bool = True
    security_algorithm: str = "hmac-sha256"
    security_secret: bytes = b""
    coding: dict[int, bytes] = field(default_factory=dict)
    individual_data: dict[int, bytes] = field(default_factory=dict)
    dtcs: list[tuple[int, int]] = field(default_factory=list)
    max_block_length: int = 0xFFF
    erase_ms_per_kib: float = 0.0
    write_kib_s: float = 256.0
    boot_ms: float = 0.0
    isotp_stmin_ms: float = 0.0
    isotp_block_size: int = 0
    fsc_records: dict[int, bytes] = field(default_factory=dict)
    fsc_status: dict[int, tuple[int, FscStatus]] = field(default_factory=dict)

    @classmethod
    def from_profile(cls, profile: EcuProfile) -> EcuState:
        """Return the ECU as it left the factory: every unit installed and valid."""
        return cls(
            address=profile.address,
            name=profile.name,
            variant=profile.variant,
            bus=profile.bus,
            hardware=profile.hardware,
            regions=[
                RegionState(
                    process_class=r.process_class,
                    address=r.address,
                    size=r.size,
                    unit=r.unit,
                    valid=True,
                )
                for r in profile.regions
            ],
            cafd=list(profile.cafd),
            mode="application",
            session=_DEFAULT_SESSION,
            programming_counter=profile.programming_counter,
            programming_counter_max=profile.programming_counter_max,
            application_valid=True,
            security_algorithm=profile.security_algorithm,
            security_secret=bytes(profile.security_secret),
            coding={did: bytes(v) for did, v in profile.coding.items()},
            individual_data={did: bytes(v) for did, v in profile.individual_data.items()},
            dtcs=[(code, DEFAULT_DTC_STATUS) for code in profile.dtcs],
            max_block_length=profile.max_block_length,
            erase_ms_per_kib=float(profile.erase_ms_per_kib),
            write_kib_s=float(profile.write_kib_s),
            boot_ms=float(profile.boot_ms),
            isotp_stmin_ms=float(profile.isotp_stmin_ms),
            isotp_block_size=profile.isotp_block_size,
        )

    @property
    def svk(self) -> list[str]:
        """What the ECU believes is installed: hardware, each region's unit, the CAFDs.

        An erased region holds no unit and is left out; a region whose last download did
        not verify still names the unit its header announced (the ECU read the header),
        which is what a technician sees on a real ECU until the region is flashed again.
        """
        units = [r.unit for r in self.regions if r.unit is not None]
        return [self.hardware, *units, *self.cafd]

    def svk_ids(self) -> list[SgbmId]:
        """:attr:`svk` as parsed SGBM-IDs, for the 0xF101 record."""
        return [SgbmId.parse(text) for text in self.svk]

    @property
    def btld_valid(self) -> bool:
        """Whether every bootloader region is valid (an ECU without one counts as valid)."""
        return all(r.valid for r in self.regions if r.process_class == _BTLD)

    @property
    def all_regions_valid(self) -> bool:
        """Whether every region holds a complete, verified unit."""
        return all(r.valid for r in self.regions)

    def take_fsc(self, code: Fsc, status: FscStatus) -> None:
        """Record the verdict on a code written; store it if accepted.

        The latest code of an application sets its status; an accepted one replaces the
        stored record of that application, a refused one leaves it as it was.
        """
        self.fsc_status[code.app_id] = (code.upgrade_index, status)
        if status is FscStatus.ACCEPTED:
            self.fsc_records[code.app_id] = code.encode()

    def install_fscs(self, records: Sequence[bytes], *, public_key: bytes | None, vin: str) -> None:
        """Take the factory's codes, judged as if written (see :func:`ecuworks.sim.fsc.judge`).

        Raises:
            ConfigError: a record is no FSC record.
        """
        for record in records:
            try:
                code, status = judge(record, public_key=public_key, vin=vin)
            except ParseError as exc:
                raise ConfigError(f"{self.name} (0x{self.address:02X}): fsc: {exc}") from exc
            self.take_fsc(code, status)

    def region_at(self, address: int) -> RegionState | None:
        """Return the region starting at ``address``, or None."""
        for region in self.regions:
            if region.address == address:
                return region
        return None

    def store_dtcs(self, codes: Sequence[int], status: int = DEFAULT_DTC_STATUS) -> None:
        """Store faults in the fault memory, as if the ECU had detected them.

        A code already stored takes the new status; new codes are appended in order.

        Raises:
            ConfigError: a code is not a 3-byte DTC or is 0x000000 (the padding some ECUs
                send, which a tester drops), the status is not 1-255 (status 0 is never
                reported: no status mask matches it), or the memory would exceed
                :data:`MAX_DTCS`. Nothing is stored then.
        """
        for code in codes:
            if not 0 < code <= 0xFF_FFFF:
                raise ConfigError(
                    f"DTC {code:#x} is not a 3-byte fault code: give 0x000001-0xFFFFFF"
                )
        if not 0 < status <= 0xFF:
            raise ConfigError(
                f"DTC status {status} is not 1-255: status 0 matches no status mask, so no "
                "tester would see the fault"
            )
        stored = dict(self.dtcs)
        stored.update(dict.fromkeys(codes, status))
        if len(stored) > MAX_DTCS:
            raise ConfigError(
                f"{self.name} would hold {len(stored)} DTCs; its fault memory keeps at most "
                f"{MAX_DTCS}"
            )
        self.dtcs[:] = list(stored.items())

    def blank(self) -> EcuState:
        """Return a new part of the same type, as it comes out of the box.

        A replacement ECU has its hardware and bootloader (BTLD regions valid with their
        unit), no application (other regions blank), no CAFD, programming counter 0, and
        runs its bootloader. Its coding and individual data DIDs exist (the memory is there)
        but every record is zero-filled, so a tester can write them after flashing.
        """
        regions = [
            RegionState(
                process_class=r.process_class,
                address=r.address,
                size=r.size,
                unit=r.unit if r.process_class == _BTLD else None,
                valid=r.process_class == _BTLD and r.unit is not None,
            )
            for r in self.regions
        ]
        return EcuState(
            address=self.address,
            name=self.name,
            variant=self.variant,
            bus=self.bus,
            hardware=self.hardware,
            regions=regions,
            cafd=[],
            mode="bootloader",
            session=_DEFAULT_SESSION,
            programming_counter=0,
            programming_counter_max=self.programming_counter_max,
            application_valid=False,
            security_algorithm=self.security_algorithm,
            security_secret=self.security_secret,
            coding={did: bytes(len(v)) for did, v in self.coding.items()},
            individual_data={did: bytes(len(v)) for did, v in self.individual_data.items()},
            dtcs=[],
            max_block_length=self.max_block_length,
            erase_ms_per_kib=self.erase_ms_per_kib,
            write_kib_s=self.write_kib_s,
            boot_ms=self.boot_ms,
            isotp_stmin_ms=self.isotp_stmin_ms,
            isotp_block_size=self.isotp_block_size,
        )

    def to_json(self) -> dict[str, Any]:
        """Return this ECU's entry of the ``/state`` JSON (see the module docstring)."""
        return {
            "address": self.address,
            "name": self.name,
            "bus": self.bus,
            "svk": self.svk,
            "mode": self.mode,
            "programming_counter": self.programming_counter,
            "flash_regions": [
                {"class": r.process_class, "address": r.address, "size": r.size}
                for r in self.regions
            ],
            "security": {
                "algorithm": self.security_algorithm,
                "secret": self.security_secret.hex(),
            },
            "coding": _records_to_json(self.coding),
            "dtcs": [f"{code:06X}" for code, _ in self.dtcs],
            # Beyond DESIGN.md's minimum: what a restart needs.
            "variant": self.variant,
            "hardware": self.hardware,
            "session": self.session,
            "regions": [
                {
                    "class": r.process_class,
                    "address": r.address,
                    "size": r.size,
                    "unit": r.unit,
                    "valid": r.valid,
                }
                for r in self.regions
            ],
            "cafd": list(self.cafd),
            "individual_data": _records_to_json(self.individual_data),
            "programming_counter_max": self.programming_counter_max,
            "application_valid": self.application_valid,
            "dtc_status": {f"{code:06X}": status for code, status in self.dtcs},
            "timing": {
                "max_block_length": self.max_block_length,
                "erase_ms_per_kib": self.erase_ms_per_kib,
                "write_kib_s": self.write_kib_s,
                "boot_ms": self.boot_ms,
                "isotp_stmin_ms": self.isotp_stmin_ms,
                "isotp_block_size": self.isotp_block_size,
            },
            "fsc": [
                {"app_id": app, "upgrade_index": index, "status": status.name.lower()}
                for app, (index, status) in sorted(self.fsc_status.items())
            ],
            "fsc_records": [self.fsc_records[app].hex() for app in sorted(self.fsc_records)],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EcuState:
        """Rebuild an ECU from :meth:`to_json`'s output.

        Raises:
            ConfigError: a key is missing or a value has the wrong type or shape; the
                message names the ECU and the field.
        """
        where = _ecu_label(data)
        try:
            mode = data["mode"]
            if mode not in MODES:
                raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
            hardware = _sgbm_text(data["hardware"])
            timing = data["timing"]
            statuses = _dict(data["dtc_status"])
            dtcs = []
            for text in _list(data["dtcs"]):
                code = _hex_int(text, 6)
                dtcs.append((code, _int(statuses[text])))
            return cls(
                address=_int(data["address"]),
                name=_str(data["name"]),
                variant=_str(data["variant"]),
                bus=_str(data["bus"]),
                hardware=hardware,
                regions=[
                    RegionState(
                        process_class=_str(r["class"]),
                        address=_int(r["address"]),
                        size=_int(r["size"]),
                        unit=None if r["unit"] is None else _sgbm_text(r["unit"]),
                        valid=_bool(r["valid"]),
                    )
                    for r in _list(data["regions"])
                ],
                cafd=[_sgbm_text(c) for c in _list(data["cafd"])],
                mode=cast(Mode, mode),
                session=_int(data["session"]),
                programming_counter=_int(data["programming_counter"]),
                programming_counter_max=_int(data["programming_counter_max"]),
                application_valid=_bool(data["application_valid"]),
                security_algorithm=_str(data["security"]["algorithm"]),
                security_secret=bytes.fromhex(_str(data["security"]["secret"])),
                coding=_records_from_json(data["coding"]),
                individual_data=_records_from_json(data["individual_data"]),
                dtcs=dtcs,
                max_block_length=_int(timing["max_block_length"]),
                erase_ms_per_kib=_float(timing["erase_ms_per_kib"]),
                write_kib_s=_float(timing["write_kib_s"]),
                boot_ms=_float(timing["boot_ms"]),
                isotp_stmin_ms=_float(timing["isotp_stmin_ms"]),
                isotp_block_size=_int(timing["isotp_block_size"]),
                fsc_records=_fsc_records_from_json(data.get("fsc_records", [])),
                fsc_status=_fsc_status_from_json(data.get("fsc", [])),
            )
        except KeyError as exc:
            raise ConfigError(f"{where}: missing field {exc}") from None
        except (TypeError, ValueError, ParseError) as exc:
            raise ConfigError(f"{where}: {exc}") from None


@dataclass(slots=True, kw_only=True)
class VehicleState:
    """The whole simulated vehicle as it is now.

    Attributes:
        name: the profile it was built from (``"f-series"``).
        series: development series (``"F030"``).
        vin: 17-character VIN.
        vo: canonical text of the vehicle order (:class:`~ecuworks.wire.vo.VehicleOrder`).
        ilevel_current: I-level the vehicle has now.
        ilevel_last: I-level before the last programming.
        ilevel_shipment: I-level it left the factory with.
        energy_mode: ``normal``, ``production``, ``transport`` or ``flash`` (routine 0F0C).
        battery: the 12 V battery.
        gateway_address: diagnostic address of the central gateway.
        ecus: ECUs by diagnostic address.
        fsc_public_key: the Ed25519 public key whose enabling codes the ECUs accept, or
            None (they accept none).
    """

    name: str
    series: str
    vin: str
    vo: str
    ilevel_current: str
    ilevel_last: str
    ilevel_shipment: str
    battery: Battery
    energy_mode: str = "normal"
    gateway_address: int = 0x10
    ecus: dict[int, EcuState] = field(default_factory=dict)
    fsc_public_key: bytes | None = None

    @classmethod
    def from_profile(cls, profile: VehicleProfile) -> VehicleState:
        """Return the vehicle as it left the factory."""
        vehicle = cls(
            name=profile.name,
            series=profile.series,
            vin=profile.vin,
            vo=profile.vo,
            ilevel_current=profile.ilevel_current,
            ilevel_last=profile.ilevel_last,
            ilevel_shipment=profile.ilevel_shipment,
            battery=Battery(volts=float(profile.battery_volts), charger=profile.charger),
            energy_mode="normal",
            gateway_address=profile.gateway_address,
            ecus={ecu.address: EcuState.from_profile(ecu) for ecu in profile.ecus},
            fsc_public_key=profile.fsc_public_key,
        )
        for ecu in profile.ecus:
            vehicle.ecus[ecu.address].install_fscs(
                ecu.fsc, public_key=vehicle.fsc_public_key, vin=vehicle.vin
            )
        return vehicle

    @property
    def gateway(self) -> EcuState | None:
        """The central gateway's ECU, if the vehicle has one."""
        return self.ecus.get(self.gateway_address)

    def install(self, profile: EcuProfile, *, blank: bool = False) -> EcuState:
        """Install a new ECU (retrofit) and return its state.

        Args:
            profile: the ECU to install.
            blank: install it as a blank part (see :meth:`EcuState.blank`) rather than with
                its factory software.

        Raises:
            ConfigError: an ECU already sits at that address.
        """
        if profile.address in self.ecus:
            taken = self.ecus[profile.address]
            raise ConfigError(
                f"cannot install {profile.name} at 0x{profile.address:02X}: {taken.name} is "
                "already there; replace it instead, or choose another address"
            )
        ecu = EcuState.from_profile(profile)
        if blank:
            ecu = ecu.blank()
        else:
            ecu.install_fscs(profile.fsc, public_key=self.fsc_public_key, vin=self.vin)
        self.ecus[ecu.address] = ecu
        return ecu

    def replace_with_blank(self, address: int) -> EcuState:
        """Swap the ECU at ``address`` for a blank part of the same type and return it.

        Raises:
            ConfigError: no ECU at that address.
        """
        old = self.ecus.get(address)
        if old is None:
            raise ConfigError(f"no ECU at 0x{address:02X} to replace")
        new = old.blank()
        self.ecus[address] = new
        return new

    def to_json(self) -> dict[str, Any]:
        """Return the ``/state`` JSON (DESIGN.md's keys plus those a restart needs)."""
        order = VehicleOrder.parse(self.vo)
        return {
            "vin": self.vin,
            "series": self.series,
            "vo": {"type_key": order.type_key, "options": list(order.options), "text": self.vo},
            "ilevel": {
                "current": self.ilevel_current,
                "last": self.ilevel_last,
                "shipment": self.ilevel_shipment,
            },
            "battery": {"volts": self.battery.volts, "charger": self.battery.charger},
            "ecus": [self.ecus[a].to_json() for a in sorted(self.ecus)],
            "name": self.name,
            "energy_mode": self.energy_mode,
            "gateway_address": self.gateway_address,
            "fsc_public_key": None if self.fsc_public_key is None else self.fsc_public_key.hex(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VehicleState:
        """Rebuild a vehicle from :meth:`to_json`'s output.

        Raises:
            ConfigError: a key is missing or a value is malformed; the message names it.
        """
        try:
            vo = _str(data["vo"]["text"])
            VehicleOrder.parse(vo)
            ecus = [EcuState.from_json(e) for e in _list(data["ecus"])]
            return cls(
                name=_str(data["name"]),
                series=_str(data["series"]),
                vin=_str(data["vin"]),
                vo=vo,
                ilevel_current=_str(data["ilevel"]["current"]),
                ilevel_last=_str(data["ilevel"]["last"]),
                ilevel_shipment=_str(data["ilevel"]["shipment"]),
                battery=Battery(
                    volts=_float(data["battery"]["volts"]),
                    charger=_bool(data["battery"]["charger"]),
                ),
                energy_mode=_str(data["energy_mode"]),
                gateway_address=_int(data["gateway_address"]),
                ecus={e.address: e for e in ecus},
                fsc_public_key=_optional_hex(data.get("fsc_public_key")),
            )
        except KeyError as exc:
            raise ConfigError(f"vehicle state: missing field {exc}") from None
        except (TypeError, ValueError, ParseError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"vehicle state: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state to ``path`` atomically.

        The JSON goes to a temporary file in the same directory, is flushed to disk, then
        renamed over ``path`` (``os.replace`` is atomic on one file system), so a crash at
        any point leaves either the old file or the new one, never half of one.

        Raises:
            ConfigError: the directory cannot be written.
        """
        target = Path(path)
        text = json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            raise ConfigError(
                f"cannot save the vehicle state to {target}: {exc.strerror or exc}; "
                "check that the directory exists and is writable"
            ) from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise ConfigError(
                f"cannot save the vehicle state to {target}: {exc.strerror or exc}"
            ) from exc
        _fsync_dir(target.parent)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> VehicleState:
        """Read a state written by :meth:`save`.

        Raises:
            ConfigError: the file cannot be read or is not a vehicle state; the message
                names the file and says what to do.
        """
        source = Path(path)
        advice = "fix it, or delete it to start the vehicle afresh from its profile"
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(
                f"cannot read the vehicle state file {source}: {exc.strerror or exc}"
            ) from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"vehicle state file {source} is corrupt (not JSON: {exc}); {advice}"
            ) from exc
        if not isinstance(data, dict):
            raise ConfigError(f"vehicle state file {source} does not hold an object; {advice}")
        try:
            return cls.from_json(data)
        except ConfigError as exc:
            raise ConfigError(f"vehicle state file {source}: {exc}; {advice}") from exc


def _fsync_dir(directory: Path) -> None:
    """Flush a directory entry to disk so that a rename survives a power cut (POSIX)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _ecu_label(data: Any) -> str:
    """Name an ECU entry for an error message: ``ECU 0x12 (DME)`` as far as known."""
    if not isinstance(data, Mapping):
        return "ECU entry"
    address, name = data.get("address"), data.get("name")
    label = f"ECU 0x{address:02X}" if isinstance(address, int) else "ECU"
    return f"{label} ({name})" if isinstance(name, str) else label


def _records_to_json(records: Mapping[int, bytes]) -> dict[str, str]:
    """Return DID records as ``{"3000": "hex"}``, in DID order."""
    return {f"{did:04X}": records[did].hex() for did in sorted(records)}


def _records_from_json(data: Any) -> dict[int, bytes]:
    """Inverse of :func:`_records_to_json`."""
    return {_hex_int(did, 4): bytes.fromhex(_str(value)) for did, value in _dict(data).items()}


def _fsc_records_from_json(data: Any) -> dict[int, bytes]:
    """Inverse of the ``fsc_records`` list: each record must decode."""
    records = {}
    for text in _list(data):
        code = Fsc.decode(bytes.fromhex(_str(text)))
        records[code.app_id] = code.encode()
    return records


def _fsc_status_from_json(data: Any) -> dict[int, tuple[int, FscStatus]]:
    """Inverse of the ``fsc`` list: ``{"app_id", "upgrade_index", "status"}`` entries."""
    statuses = {}
    for entry in _list(data):
        name = _str(entry["status"])
        if name.upper() not in FscStatus.__members__ or name != name.lower():
            known = ", ".join(s.name.lower() for s in FscStatus)
            raise ValueError(f"FSC status must be one of {known}, got {name!r}")
        checked = FscStatusEntry(
            app_id=_int(entry["app_id"]),
            upgrade_index=_int(entry["upgrade_index"]),
            status=FscStatus[name.upper()],
        )
        statuses[checked.app_id] = (checked.upgrade_index, checked.status)
    return statuses


def _optional_hex(value: Any) -> bytes | None:
    """Hex text, or None for null or absent."""
    return None if value is None else bytes.fromhex(_str(value))


def _hex_int(text: Any, digits: int) -> int:
    """Parse exactly ``digits`` hex digits."""
    value = _str(text)
    if len(value) != digits:
        raise ValueError(f"expected {digits} hex digits, got {value!r}")
    return int(value, 16)


def _sgbm_text(value: Any) -> str:
    """Return an SGBM-ID text after checking that it parses."""
    text = _str(value)
    SgbmId.parse(text)
    return text


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {value!r}")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _float(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value
