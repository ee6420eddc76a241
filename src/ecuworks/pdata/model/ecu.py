"""ECU metadata: addressing, timing hints, security, flash regions, coding layout and
which DIDs hold individual data.

Coding layout: a record is one coding DID of ``length`` bytes. A parameter is a bit field
of one byte (``byte``, ``mask``); its ``values`` name the field's values, counted from the
mask's lowest set bit. A record's ``checksum``, if any, is ``sum8``: the byte at ``at`` is
``(seed + sum of every other byte) & 0xFF``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from ecuworks.errors import ConfigError
from ecuworks.pdata.model._json import JsonObject, check_name, check_range
from ecuworks.wire.sgbm import ProcessClass

__all__ = ["CodingLayout", "CodingParameter", "CodingRecord", "EcuInfo", "RegionInfo"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionInfo:
    """One flash region of an ECU variant.

    Attributes:
        process_class: the class of unit it holds (``"BTLD"``, ``"SWFL"``...).
        address: start address.
        size: bytes (at the catalog's size scale).
    """

    process_class: str
    address: int
    size: int

    def __post_init__(self) -> None:
        if self.process_class not in ProcessClass.__members__:
            raise ConfigError(f"process_class {self.process_class!r} is unknown")
        check_range(self.address, "address", 0xFFFF_FFFF)
        if self.size <= 0:
            raise ConfigError(f"size {self.size} must be positive")

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"class": self.process_class, "address": self.address, "size": self.size}

    @classmethod
    def from_json(cls, data: object, where: str) -> RegionInfo:
        """Read the JSON form."""
        obj = JsonObject(data, where)
        return obj.build(
            cls,
            process_class=obj.text("class"),
            address=obj.integer("address"),
            size=obj.integer("size"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CodingRecord:
    """One coding DID.

    Attributes:
        did: the data identifier written with 0x2E in the coding session.
        length: bytes of the record.
        checksum: ``"sum8"`` or None.
        checksum_at: byte index of the checksum (``sum8`` only).
        checksum_seed: added to the sum (``sum8`` only).
    """

    did: int
    length: int
    checksum: Literal["sum8"] | None = None
    checksum_at: int = 0
    checksum_seed: int = 0

    def __post_init__(self) -> None:
        check_range(self.did, "did", 0xFFFF)
        if not 1 <= self.length <= 4096:
            raise ConfigError(f"length {self.length} must be 1-4096")
        if self.checksum not in (None, "sum8"):
            raise ConfigError(f"checksum {self.checksum!r} must be sum8 or absent")
        if self.checksum is not None and not 0 <= self.checksum_at < self.length:
            raise ConfigError(f"checksum_at {self.checksum_at} is outside the record")
        check_range(self.checksum_seed, "checksum_seed", 0xFF)

    def with_checksum(self, data: bytes) -> bytes:
        """Return ``data`` with its checksum byte set (unchanged without a checksum)."""
        if self.checksum is None:
            return data
        out = bytearray(data)
        out[self.checksum_at] = 0
        out[self.checksum_at] = (self.checksum_seed + sum(out)) & 0xFF
        return bytes(out)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        out: dict[str, Any] = {"did": self.did, "length": self.length}
        if self.checksum is not None:
            out |= {"checksum": self.checksum, "checksum_at": self.checksum_at}
            out["checksum_seed"] = self.checksum_seed
        return out

    @classmethod
    def from_json(cls, data: object, where: str) -> CodingRecord:
        """Read the JSON form."""
        obj = JsonObject(data, where)
        return obj.build(
            cls,
            did=obj.integer("did"),
            length=obj.integer("length"),
            checksum=obj.get("checksum", str, None),
            checksum_at=obj.get("checksum_at", int, 0),
            checksum_seed=obj.get("checksum_seed", int, 0),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CodingParameter:
    """A named bit field of a coding record.

    Attributes:
        name: parameter name, unique in the ECU.
        did: the record it lives in.
        byte: byte index in the record.
        mask: the field's bits in that byte.
        values: value name -> field value (counted from the mask's lowest bit).
    """

    name: str
    did: int
    byte: int
    mask: int
    values: Mapping[str, int] = field(hash=False)

    def __post_init__(self) -> None:
        check_name(self.name, "name")
        check_range(self.did, "did", 0xFFFF)
        if self.byte < 0:
            raise ConfigError(f"byte {self.byte} must not be negative")
        if not 1 <= self.mask <= 0xFF:
            raise ConfigError(f"mask {self.mask:#x} must be 0x01-0xFF")
        if not self.values:
            raise ConfigError("values: at least one value is needed")
        top = self.mask >> self.shift
        for key, value in self.values.items():
            check_name(key, "value name")
            if not 0 <= value <= top:
                raise ConfigError(f"values.{key}: {value} does not fit mask {self.mask:#04x}")
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    @property
    def shift(self) -> int:
        """Position of the mask's lowest set bit."""
        return (self.mask & -self.mask).bit_length() - 1

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "name": self.name,
            "did": self.did,
            "byte": self.byte,
            "mask": self.mask,
            "values": dict(self.values),
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> CodingParameter:
        """Read the JSON form."""
        obj = JsonObject(data, where)
        values = obj.get("values", dict)
        for key, value in values.items():
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{obj.field('values')}.{key}: expected an integer")
        return obj.build(
            cls,
            name=obj.text("name"),
            did=obj.integer("did"),
            byte=obj.integer("byte"),
            mask=obj.integer("mask"),
            values=values,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CodingLayout:
    """How an ECU's coding DIDs are laid out.

    Attributes:
        records: the coding DIDs.
        parameters: the named fields inside them.
    """

    records: tuple[CodingRecord, ...] = ()
    parameters: tuple[CodingParameter, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "records", tuple(self.records))
        object.__setattr__(self, "parameters", tuple(self.parameters))
        records = {r.did: r for r in self.records}
        if len(records) != len(self.records):
            raise ConfigError("records: a DID is listed twice")
        names: set[str] = set()
        for i, p in enumerate(self.parameters):
            record = records.get(p.did)
            if record is None:
                raise ConfigError(f"parameters[{i}]: DID 0x{p.did:04X} is no record")
            if p.byte >= record.length or (record.checksum and p.byte == record.checksum_at):
                raise ConfigError(f"parameters[{i}]: byte {p.byte} is outside the data bytes")
            if p.name in names:
                raise ConfigError(f"parameters[{i}]: name {p.name} is listed twice")
            names.add(p.name)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "records": [r.to_json() for r in self.records],
            "parameters": [p.to_json() for p in self.parameters],
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> CodingLayout:
        """Read the JSON form."""
        obj = JsonObject(data, where)
        return obj.build(
            cls,
            records=obj.items("records", CodingRecord.from_json),
            parameters=obj.items("parameters", CodingParameter.from_json),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EcuInfo:
    """Metadata of one ECU of the series (variant, addressing, timing hints, security).

    Attributes:
        address: diagnostic address.
        name: short name, e.g. ``"DME"``.
        variant: base variant.
        bus: the bus it sits on.
        max_block_length: block-length hint (0x34 maxNumberOfBlockLength).
        erase_ms_per_kib: erase time hint for estimates.
        write_kib_s: write speed hint for estimates.
        boot_ms: reset time hint.
        security_algorithm: key algorithm name for 0x27.
        security_secret: its secret, hex (demo algorithm only).
        regions: flash regions.
        coding: coding layout.
        isotp_stmin_ms: STmin the ECU sends in ISO-TP flow control (CAN ECUs), for
            estimates; absent in JSON when 0.
        isotp_block_size: the ISO-TP block size it sends; 0 = no limit (absent when 0).
        individual_data: the DIDs holding the ECU's individual data (keys, mileage,
            adaptations: DOMAIN.md), which a module replacement backs up from the old ECU
            and restores into the new one; absent in JSON when empty.
    """

    address: int
    name: str
    variant: str
    bus: str
    max_block_length: int
    erase_ms_per_kib: float
    write_kib_s: float
    boot_ms: float
    security_algorithm: str
    security_secret: str
    regions: tuple[RegionInfo, ...]
    coding: CodingLayout = field(default_factory=CodingLayout)
    isotp_stmin_ms: float = 0.0
    isotp_block_size: int = 0
    individual_data: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_range(self.address, "address", 0xFF)
        object.__setattr__(self, "individual_data", tuple(self.individual_data))
        self._check_individual_data()
        if not 0 <= self.isotp_stmin_ms <= 127:
            raise ConfigError(f"isotp_stmin_ms {self.isotp_stmin_ms} must be 0-127")
        check_range(self.isotp_block_size, "isotp_block_size", 0xFF)
        for attr in ("name", "variant", "bus", "security_algorithm"):
            check_name(getattr(self, attr), attr)
        check_range(self.max_block_length, "max_block_length", 0xFFFF)
        if self.write_kib_s <= 0 or self.erase_ms_per_kib < 0 or self.boot_ms < 0:
            raise ConfigError("erase_ms_per_kib, write_kib_s, boot_ms must be positive numbers")
        try:
            bytes.fromhex(self.security_secret)
        except ValueError:
            raise ConfigError("security_secret must be hex") from None
        object.__setattr__(self, "regions", tuple(self.regions))

    def _check_individual_data(self) -> None:
        """Each DID in range, listed once, and not also a coding record."""
        coding = {r.did for r in self.coding.records}
        seen: set[int] = set()
        for i, did in enumerate(self.individual_data):
            where = f"individual_data[{i}]"
            if not isinstance(did, int) or isinstance(did, bool):
                raise ConfigError(f"{where}: DID {did!r} must be an integer")
            if not 0 <= did <= 0xFFFF:
                raise ConfigError(f"{where}: DID {did:#x} must be 0-0xffff")
            if did in seen:
                raise ConfigError(f"{where}: DID 0x{did:04X} is listed twice")
            if did in coding:
                # A replacement would restore the old ECU's bytes over the freshly coded
                # ones: a DID can only be one of the two.
                raise ConfigError(
                    f"{where}: DID 0x{did:04X} is also a coding record; it can only be one"
                )
            seen.add(did)

    @property
    def secret(self) -> bytes:
        """The security secret as bytes."""
        return bytes.fromhex(self.security_secret)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        out: dict[str, Any] = {
            "address": self.address,
            "name": self.name,
            "variant": self.variant,
            "bus": self.bus,
            "max_block_length": self.max_block_length,
            "erase_ms_per_kib": self.erase_ms_per_kib,
            "write_kib_s": self.write_kib_s,
            "boot_ms": self.boot_ms,
            "security_algorithm": self.security_algorithm,
            "security_secret": self.security_secret,
            "regions": [r.to_json() for r in self.regions],
            "coding": self.coding.to_json(),
        }
        if self.isotp_stmin_ms:
            out["isotp_stmin_ms"] = self.isotp_stmin_ms
        if self.isotp_block_size:
            out["isotp_block_size"] = self.isotp_block_size
        if self.individual_data:
            out["individual_data"] = list(self.individual_data)
        return out

    @classmethod
    def from_json(cls, data: object, where: str) -> EcuInfo:
        """Read the JSON form."""
        obj = JsonObject(data, where)
        individual: list[object] = obj.get("individual_data", list, [])
        for i, did in enumerate(individual):
            if not isinstance(did, int) or isinstance(did, bool):
                kind = "a boolean" if isinstance(did, bool) else type(did).__name__
                raise ConfigError(
                    f"{obj.field('individual_data')}[{i}]: expected an integer DID, got {kind}"
                )
        return obj.build(
            cls,
            address=obj.integer("address"),
            name=obj.text("name"),
            variant=obj.text("variant"),
            bus=obj.text("bus"),
            max_block_length=obj.integer("max_block_length"),
            erase_ms_per_kib=obj.number("erase_ms_per_kib"),
            write_kib_s=obj.number("write_kib_s"),
            boot_ms=obj.number("boot_ms"),
            security_algorithm=obj.text("security_algorithm"),
            security_secret=obj.text("security_secret"),
            regions=obj.items("regions", RegionInfo.from_json),
            coding=CodingLayout.from_json(obj.get("coding", dict), obj.field("coding")),
            isotp_stmin_ms=float(obj.get("isotp_stmin_ms", (int, float), 0.0)),
            isotp_block_size=obj.get("isotp_block_size", int, 0),
            individual_data=tuple(individual),
        )
