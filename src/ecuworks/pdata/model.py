"""The P-Data model of one vehicle series, and its JSON form (``<series>/catalog.json``).

Terms (DOMAIN.md): an *I-level* is a tested whole-vehicle release; for each one the catalog
gives the target SVK of every ECU variant and hardware (HWEL), the trade's KIS rules in data
form. Units may carry a VO condition (a head-unit unit only with option ``$609``). *CAFD*
coding rules map VO conditions to parameter values; *FSC* applications are what enabling
codes unlock; a *retrofit* installs hardware for an option and lists what to program, code
and enable.

Conditions are a small data structure, never code: ``{"option": "$609"}``,
``{"all_of": [...]}``, ``{"any_of": [...]}``, ``{"not": {...}}``.

Coding layout: a record is one coding DID of ``length`` bytes. A parameter is a bit field
of one byte (``byte``, ``mask``); its ``values`` name the field's values, counted from the
mask's lowest set bit. A record's ``checksum``, if any, is ``sum8``: the byte at ``at`` is
``(seed + sum of every other byte) & 0xFF``.

Every object checks itself when built and :meth:`from_json` refuses unknown or missing
keys, raising :class:`~ecuworks.errors.ConfigError` that names the field
(``catalog.json: ilevels[2].targets[5].units[1].sgbm: ...``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from ecuworks.errors import ConfigError, ParseError
from ecuworks.wire.ilevel import ILevel
from ecuworks.wire.sgbm import ProcessClass, SgbmId
from ecuworks.wire.vo import VehicleOrder

__all__ = [
    "SCHEMA",
    "CodingLayout",
    "CodingParameter",
    "CodingRecord",
    "CodingRule",
    "CompressedForm",
    "Condition",
    "DtcDescription",
    "EcuInfo",
    "FscApplication",
    "ILevelRelease",
    "RegionInfo",
    "Retrofit",
    "Segment",
    "SeriesCatalog",
    "TargetSvk",
    "TargetUnit",
    "UnitInfo",
]

SCHEMA = 1
_T = TypeVar("_T")
_OPTION = re.compile(r"\$[A-Z0-9]{3}")
_DATE = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CONDITION_KEYS = ("option", "all_of", "any_of", "not")


class _Obj:
    """A JSON object being read: typed getters that name the field, unknown keys refused."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.where = where
        self._asked: set[str] = set()

    def field(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, kind: type | tuple[type, ...], default: object = ...) -> Any:
        self._asked.add(key)
        if key not in self.data:
            if default is ...:
                raise ConfigError(f"{self.field(key)}: missing")
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise ConfigError(f"{self.field(key)}: expected {_kind_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            raise ConfigError(
                f"{self.field(key)}: expected {_kind_name(kind)}, got {type(value).__name__}"
            )
        return value

    def text(self, key: str) -> str:
        value: str = self.get(key, str)
        return value

    def integer(self, key: str) -> int:
        value: int = self.get(key, int)
        return value

    def number(self, key: str) -> float:
        return float(self.get(key, (int, float)))

    def items(
        self, key: str, read: Callable[[object, str], _T], *, optional: bool = False
    ) -> tuple[_T, ...]:
        values: list[object] = self.get(key, list, [] if optional else ...)
        return tuple(read(v, f"{self.field(key)}[{i}]") for i, v in enumerate(values))

    def build(self, factory: Callable[..., _T], **fields: Any) -> _T:
        """Refuse unknown keys, then build; prefix the object's own errors with where."""
        unknown = sorted(set(self.data) - self._asked)
        if unknown:
            known = ", ".join(sorted(self._asked))
            raise ConfigError(f"{self.field(unknown[0])}: unknown key (known here: {known})")
        try:
            return factory(**fields)
        except ConfigError as exc:
            raise ConfigError(f"{self.where}: {exc}" if self.where else str(exc)) from exc


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", float: "a number", list: "an array"}
    names |= {dict: "an object", bool: "a boolean"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _sgbm_text(text: str, what: str, expected: tuple[ProcessClass, ...] = ()) -> str:
    try:
        unit = SgbmId.parse(text)
    except ParseError as exc:
        raise ConfigError(f"{what}: {exc}") from exc
    if expected and unit.process_class not in expected:
        names = "/".join(c.name for c in expected)
        raise ConfigError(f"{what}: {unit} is a {unit.process_class.name}, expected {names}")
    return str(unit)


def _byte_range(value: int, what: str, top: int) -> None:
    if not 0 <= value <= top:
        raise ConfigError(f"{what} {value:#x} must be 0-{top:#x}")


def _name(value: str, what: str) -> None:
    if not _NAME.fullmatch(value):
        raise ConfigError(f"{what} {value!r} must be letters, digits, '.', '_' or '-'")


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    """A VO condition: one option, or all/any of several conditions, or a negation.

    Attributes:
        option: ``"$609"`` for an option test, else None.
        all_of: true when every term is (empty for other kinds).
        any_of: true when at least one term is.
        negate: the negated condition, for ``not``.
    """

    option: str | None = None
    all_of: tuple[Condition, ...] = ()
    any_of: tuple[Condition, ...] = ()
    negate: Condition | None = None

    def __post_init__(self) -> None:
        kinds = [self.option is not None, bool(self.all_of), bool(self.any_of)]
        kinds.append(self.negate is not None)
        if sum(kinds) != 1:
            raise ConfigError("condition needs exactly one of option, all_of, any_of, not")
        if self.option is not None and not _OPTION.fullmatch(self.option):
            raise ConfigError(f"condition option {self.option!r} must be like $609")

    @classmethod
    def has(cls, option: str) -> Condition:
        """The condition "the VO holds ``option``"."""
        return cls(option=option)

    def matches(self, vo: VehicleOrder) -> bool:
        """Tell whether the vehicle order meets the condition."""
        if self.option is not None:
            return self.option in vo.options
        if self.all_of:
            return all(c.matches(vo) for c in self.all_of)
        if self.any_of:
            return any(c.matches(vo) for c in self.any_of)
        assert self.negate is not None
        return not self.negate.matches(vo)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        if self.option is not None:
            return {"option": self.option}
        if self.all_of:
            return {"all_of": [c.to_json() for c in self.all_of]}
        if self.any_of:
            return {"any_of": [c.to_json() for c in self.any_of]}
        assert self.negate is not None
        return {"not": self.negate.to_json()}

    @classmethod
    def from_json(cls, data: object, where: str = "condition") -> Condition:
        """Read the JSON form.

        Raises:
            ConfigError: not exactly one known key, or a bad option code.
        """
        obj = _Obj(data, where)
        present = [k for k in _CONDITION_KEYS if k in obj.data]
        if len(present) != 1 or len(obj.data) != 1:
            raise ConfigError(f"{where}: expected exactly one of {', '.join(_CONDITION_KEYS)}")
        key = present[0]
        if key == "option":
            return obj.build(cls, option=obj.text("option"))
        if key == "not":
            return obj.build(cls, negate=cls.from_json(obj.get("not", dict), obj.field("not")))
        terms = obj.items(key, cls.from_json)
        if not terms:
            raise ConfigError(f"{obj.field(key)}: needs at least one condition")
        return obj.build(cls, **{key: terms})


def _condition(data: object, where: str) -> Condition | None:
    return None if data is None else Condition.from_json(data, where)


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetUnit:
    """One entry of a target SVK.

    Attributes:
        sgbm: the unit (canonical SGBM-ID text).
        when: the VO condition under which the unit belongs to the SVK; None = always.
    """

    sgbm: str
    when: Condition | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sgbm", _sgbm_text(self.sgbm, "sgbm"))

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        out: dict[str, Any] = {"sgbm": self.sgbm}
        if self.when is not None:
            out["when"] = self.when.to_json()
        return out

    @classmethod
    def from_json(cls, data: object, where: str) -> TargetUnit:
        """Read the JSON form."""
        obj = _Obj(data, where)
        sgbm = obj.text("sgbm")
        when = _condition(obj.get("when", dict, None), obj.field("when"))
        return obj.build(cls, sgbm=sgbm, when=when)


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetSvk:
    """The target SVK of one ECU variant with one hardware (HWEL).

    Attributes:
        variant: ECU base variant, e.g. ``"DME_B48"``.
        hardware: the HWEL SGBM-ID the SVK applies to.
        units: the units, HWEL first, in SVK order.
    """

    variant: str
    hardware: str
    units: tuple[TargetUnit, ...]

    def __post_init__(self) -> None:
        _name(self.variant, "variant")
        hw = _sgbm_text(self.hardware, "hardware", (ProcessClass.HWEL,))
        object.__setattr__(self, "hardware", hw)
        object.__setattr__(self, "units", tuple(self.units))
        seen: set[tuple[ProcessClass, int]] = set()
        for i, unit in enumerate(self.units):
            parsed = SgbmId.parse(unit.sgbm)
            key = (parsed.process_class, parsed.unit_id)
            if key in seen:
                raise ConfigError(f"units[{i}]: {unit.sgbm} is a unit already listed")
            seen.add(key)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "variant": self.variant,
            "hardware": self.hardware,
            "units": [u.to_json() for u in self.units],
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> TargetSvk:
        """Read the JSON form."""
        obj = _Obj(data, where)
        return obj.build(
            cls,
            variant=obj.text("variant"),
            hardware=obj.text("hardware"),
            units=obj.items("units", TargetUnit.from_json),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ILevelRelease:
    """One I-level of the series and its target SVKs.

    Attributes:
        ilevel: ``SSSS-YY-MM-NNN``.
        date: release date, ISO ``YYYY-MM-DD``.
        targets: target SVK per (variant, hardware).
    """

    ilevel: str
    date: str
    targets: tuple[TargetSvk, ...]

    def __post_init__(self) -> None:
        try:
            level = ILevel.parse(self.ilevel)
        except ParseError as exc:
            raise ConfigError(f"ilevel: {exc}") from exc
        object.__setattr__(self, "ilevel", str(level))
        if not _DATE.fullmatch(self.date):
            raise ConfigError(f"date {self.date!r} must be YYYY-MM-DD")
        object.__setattr__(self, "targets", tuple(self.targets))
        keys = [(t.variant, t.hardware) for t in self.targets]
        if len(set(keys)) != len(keys):
            raise ConfigError("targets: a (variant, hardware) pair is listed twice")

    @property
    def level(self) -> ILevel:
        """The parsed I-level."""
        return ILevel.parse(self.ilevel)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "ilevel": self.ilevel,
            "date": self.date,
            "targets": [t.to_json() for t in self.targets],
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> ILevelRelease:
        """Read the JSON form."""
        obj = _Obj(data, where)
        return obj.build(
            cls,
            ilevel=obj.text("ilevel"),
            date=obj.text("date"),
            targets=obj.items("targets", TargetSvk.from_json),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """A part of a unit image and the flash address it is downloaded to.

    Attributes:
        address: flash address (the 0x34 memory address).
        offset: where the segment starts in the image file.
        length: bytes.
    """

    address: int
    offset: int
    length: int

    def __post_init__(self) -> None:
        _byte_range(self.address, "segment address", 0xFFFF_FFFF)
        if self.offset < 0 or self.length <= 0:
            raise ConfigError(f"segment offset {self.offset} / length {self.length} invalid")

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"address": self.address, "offset": self.offset, "length": self.length}

    @classmethod
    def from_json(cls, data: object, where: str) -> Segment:
        """Read the JSON form."""
        obj = _Obj(data, where)
        return obj.build(
            cls,
            address=obj.integer("address"),
            offset=obj.integer("offset"),
            length=obj.integer("length"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CompressedForm:
    """An optional compressed form of an image, for bootloaders that decompress.

    Attributes:
        path: target path inside the series.
        method: compression method name, e.g. ``"zlib"``.
        size: bytes of the compressed file.
        sha256: its SHA-256, hex.
    """

    path: str
    method: str
    size: int
    sha256: str

    def __post_init__(self) -> None:
        _name(self.method, "method")
        if self.size <= 0:
            raise ConfigError(f"size {self.size} must be positive")
        if not _SHA256.fullmatch(self.sha256):
            raise ConfigError("sha256 must be 64 lower-case hex digits")

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"path": self.path, "method": self.method, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: object, where: str) -> CompressedForm:
        """Read the JSON form."""
        obj = _Obj(data, where)
        return obj.build(
            cls,
            path=obj.text("path"),
            method=obj.text("method"),
            size=obj.integer("size"),
            sha256=obj.text("sha256"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitInfo:
    """One flashable software unit and its image (``EWU1`` header + payload).

    Attributes:
        sgbm: the unit.
        path: the image's target path inside the series, e.g. ``"units/SWFL-....bin"``.
        size: bytes of the image, header included.
        sha256: SHA-256 of the image, hex (the signed metadata says the same).
        segments: what goes where in flash.
        compressed: an optional compressed form.
    """

    sgbm: str
    path: str
    size: int
    sha256: str
    segments: tuple[Segment, ...]
    compressed: CompressedForm | None = None

    def __post_init__(self) -> None:
        sgbm = _sgbm_text(self.sgbm, "sgbm")
        if SgbmId.parse(sgbm).process_class in (ProcessClass.HWEL, ProcessClass.CAFD):
            raise ConfigError(f"sgbm: {sgbm} is no flashable unit")
        object.__setattr__(self, "sgbm", sgbm)
        if self.size <= 0:
            raise ConfigError(f"size {self.size} must be positive")
        if not _SHA256.fullmatch(self.sha256):
            raise ConfigError("sha256 must be 64 lower-case hex digits")
        object.__setattr__(self, "segments", tuple(self.segments))
        if not self.segments:
            raise ConfigError("segments: a unit needs at least one segment")
        for i, seg in enumerate(self.segments):
            if seg.offset + seg.length > self.size:
                raise ConfigError(f"segments[{i}]: ends after the image's {self.size} bytes")

    @property
    def unit(self) -> SgbmId:
        """The parsed SGBM-ID."""
        return SgbmId.parse(self.sgbm)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        out: dict[str, Any] = {
            "sgbm": self.sgbm,
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "segments": [s.to_json() for s in self.segments],
        }
        if self.compressed is not None:
            out["compressed"] = self.compressed.to_json()
        return out

    @classmethod
    def from_json(cls, data: object, where: str) -> UnitInfo:
        """Read the JSON form."""
        obj = _Obj(data, where)
        compressed = obj.get("compressed", dict, None)
        return obj.build(
            cls,
            sgbm=obj.text("sgbm"),
            path=obj.text("path"),
            size=obj.integer("size"),
            sha256=obj.text("sha256"),
            segments=obj.items("segments", Segment.from_json),
            compressed=None
            if compressed is None
            else CompressedForm.from_json(compressed, obj.field("compressed")),
        )


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
        _byte_range(self.address, "address", 0xFFFF_FFFF)
        if self.size <= 0:
            raise ConfigError(f"size {self.size} must be positive")

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"class": self.process_class, "address": self.address, "size": self.size}

    @classmethod
    def from_json(cls, data: object, where: str) -> RegionInfo:
        """Read the JSON form."""
        obj = _Obj(data, where)
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
        _byte_range(self.did, "did", 0xFFFF)
        if not 1 <= self.length <= 4096:
            raise ConfigError(f"length {self.length} must be 1-4096")
        if self.checksum not in (None, "sum8"):
            raise ConfigError(f"checksum {self.checksum!r} must be sum8 or absent")
        if self.checksum is not None and not 0 <= self.checksum_at < self.length:
            raise ConfigError(f"checksum_at {self.checksum_at} is outside the record")
        _byte_range(self.checksum_seed, "checksum_seed", 0xFF)

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
        obj = _Obj(data, where)
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
        _name(self.name, "name")
        _byte_range(self.did, "did", 0xFFFF)
        if self.byte < 0:
            raise ConfigError(f"byte {self.byte} must not be negative")
        if not 1 <= self.mask <= 0xFF:
            raise ConfigError(f"mask {self.mask:#x} must be 0x01-0xFF")
        if not self.values:
            raise ConfigError("values: at least one value is needed")
        top = self.mask >> self.shift
        for key, value in self.values.items():
            _name(key, "value name")
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
        obj = _Obj(data, where)
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
        obj = _Obj(data, where)
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

    def __post_init__(self) -> None:
        _byte_range(self.address, "address", 0xFF)
        for attr in ("name", "variant", "bus", "security_algorithm"):
            _name(getattr(self, attr), attr)
        _byte_range(self.max_block_length, "max_block_length", 0xFFFF)
        if self.write_kib_s <= 0 or self.erase_ms_per_kib < 0 or self.boot_ms < 0:
            raise ConfigError("erase_ms_per_kib, write_kib_s, boot_ms must be positive numbers")
        try:
            bytes.fromhex(self.security_secret)
        except ValueError:
            raise ConfigError("security_secret must be hex") from None
        object.__setattr__(self, "regions", tuple(self.regions))

    @property
    def secret(self) -> bytes:
        """The security secret as bytes."""
        return bytes.fromhex(self.security_secret)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
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

    @classmethod
    def from_json(cls, data: object, where: str) -> EcuInfo:
        """Read the JSON form."""
        obj = _Obj(data, where)
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
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CodingRule:
    """One CAFD rule: set ``parameter`` to ``value`` when ``when`` holds (None = default).

    Rules of one parameter are tried in order; the first that holds wins.

    Attributes:
        address: the ECU.
        cafd: the CAFD unit the rule belongs to (SGBM-ID; rules hold for any version).
        parameter: parameter name in the ECU's coding layout.
        value: value name.
        when: the VO condition, or None.
    """

    address: int
    cafd: str
    parameter: str
    value: str
    when: Condition | None = None

    def __post_init__(self) -> None:
        _byte_range(self.address, "address", 0xFF)
        object.__setattr__(self, "cafd", _sgbm_text(self.cafd, "cafd", (ProcessClass.CAFD,)))
        _name(self.parameter, "parameter")
        _name(self.value, "value")

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        out: dict[str, Any] = {
            "address": self.address,
            "cafd": self.cafd,
            "parameter": self.parameter,
            "value": self.value,
        }
        if self.when is not None:
            out["when"] = self.when.to_json()
        return out

    @classmethod
    def from_json(cls, data: object, where: str) -> CodingRule:
        """Read the JSON form."""
        obj = _Obj(data, where)
        return obj.build(
            cls,
            address=obj.integer("address"),
            cafd=obj.text("cafd"),
            parameter=obj.text("parameter"),
            value=obj.text("value"),
            when=_condition(obj.get("when", dict, None), obj.field("when")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FscApplication:
    """A function an enabling code (FSC) unlocks.

    Attributes:
        app_id: application id (16 bits).
        name: what it unlocks.
        address: the ECU the code is written to.
        upgrade_index: the current upgrade index.
    """

    app_id: int
    name: str
    address: int
    upgrade_index: int = 1

    def __post_init__(self) -> None:
        _byte_range(self.app_id, "app_id", 0xFFFF)
        _byte_range(self.address, "address", 0xFF)
        _byte_range(self.upgrade_index, "upgrade_index", 0xFFFF)
        if not self.name.strip():
            raise ConfigError("name must not be empty")

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "app_id": self.app_id,
            "name": self.name,
            "address": self.address,
            "upgrade_index": self.upgrade_index,
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> FscApplication:
        """Read the JSON form."""
        obj = _Obj(data, where)
        return obj.build(
            cls,
            app_id=obj.integer("app_id"),
            name=obj.text("name"),
            address=obj.integer("address"),
            upgrade_index=obj.integer("upgrade_index"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Retrofit:
    """What retrofitting one option takes.

    Attributes:
        option: the option code added to the VO, e.g. ``"$610"``.
        name: what it is.
        install: ECUs to install, each in the keys of a profile's ``[[ecus]]`` table
            (the simulator's ``POST /ecus`` body; region sizes are real-world bytes).
        program: addresses to program to the target SVK.
        code: addresses to code.
        enable: FSC application ids to enable.
    """

    option: str
    name: str
    install: tuple[Mapping[str, Any], ...] = field(hash=False)
    program: tuple[int, ...] = ()
    code: tuple[int, ...] = ()
    enable: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not _OPTION.fullmatch(self.option):
            raise ConfigError(f"option {self.option!r} must be like $609")
        for attr in ("install", "program", "code", "enable"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        for i, table in enumerate(self.install):
            if not isinstance(table.get("address"), int) or not isinstance(table.get("name"), str):
                raise ConfigError(f"install[{i}]: an ECU table needs address and name")
        for address in (*self.program, *self.code):
            _byte_range(address, "address", 0xFF)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "option": self.option,
            "name": self.name,
            "install": [dict(t) for t in self.install],
            "program": list(self.program),
            "code": list(self.code),
            "enable": list(self.enable),
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> Retrofit:
        """Read the JSON form."""
        obj = _Obj(data, where)

        def ints(key: str) -> tuple[int, ...]:
            return obj.items(key, _int_item)

        return obj.build(
            cls,
            option=obj.text("option"),
            name=obj.text("name"),
            install=obj.items("install", _dict_item),
            program=ints("program"),
            code=ints("code"),
            enable=ints("enable"),
        )


def _int_item(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{where}: expected an integer")
    return value


def _dict_item(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected an object")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class DtcDescription:
    """What a 3-byte DTC means.

    Attributes:
        code: the DTC.
        text: its description for the technician.
    """

    code: int
    text: str

    def __post_init__(self) -> None:
        _byte_range(self.code, "code", 0xFF_FFFF)
        if not self.text.strip():
            raise ConfigError("text must not be empty")

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"code": self.code, "text": self.text}

    @classmethod
    def from_json(cls, data: object, where: str) -> DtcDescription:
        """Read the JSON form."""
        obj = _Obj(data, where)
        return obj.build(cls, code=obj.integer("code"), text=obj.text("text"))


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesCatalog:
    """Everything the P-Data says about one series (``<series>/catalog.json``).

    Attributes:
        series: the I-level series, e.g. ``"F030"``.
        vehicle: the simulator profile it was made for, if any.
        size_scale: the region size scale the images were made for.
        ilevels: the I-levels, oldest first.
        ecus: ECU metadata, by address.
        units: the flashable units.
        coding_rules: the CAFD rules.
        fsc: the FSC applications.
        retrofits: the retrofit catalog.
        dtcs: DTC descriptions.
    """

    series: str
    vehicle: str | None = None
    size_scale: float = 1.0
    ilevels: tuple[ILevelRelease, ...]
    ecus: tuple[EcuInfo, ...]
    units: tuple[UnitInfo, ...]
    coding_rules: tuple[CodingRule, ...] = ()
    fsc: tuple[FscApplication, ...] = ()
    retrofits: tuple[Retrofit, ...] = ()
    dtcs: tuple[DtcDescription, ...] = ()

    def __post_init__(self) -> None:
        for attr in ("ilevels", "ecus", "units", "coding_rules", "fsc", "retrofits", "dtcs"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        if not self.ilevels:
            raise ConfigError("ilevels: a series needs at least one I-level")
        levels = [r.level for r in self.ilevels]
        for i, level in enumerate(levels):
            if level.series != self.series:
                raise ConfigError(f"ilevels[{i}]: {level} is not of series {self.series}")
            if i and not levels[i - 1] < level:
                raise ConfigError(f"ilevels[{i}]: {level} is not newer than {levels[i - 1]}")
        _unique([e.address for e in self.ecus], "ecus", "address")
        _unique([u.sgbm for u in self.units], "units", "sgbm")
        _unique([f.app_id for f in self.fsc], "fsc", "app_id")
        _unique([r.option for r in self.retrofits], "retrofits", "option")
        _unique([d.code for d in self.dtcs], "dtcs", "code")

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "schema": SCHEMA,
            "series": self.series,
            "vehicle": self.vehicle,
            "size_scale": self.size_scale,
            "ilevels": [r.to_json() for r in self.ilevels],
            "ecus": [e.to_json() for e in self.ecus],
            "units": [u.to_json() for u in self.units],
            "coding_rules": [r.to_json() for r in self.coding_rules],
            "fsc": [f.to_json() for f in self.fsc],
            "retrofits": [r.to_json() for r in self.retrofits],
            "dtcs": [d.to_json() for d in self.dtcs],
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON bytes (sorted keys, fixed layout): equal catalogs, equal bytes."""
        return (json.dumps(self.to_json(), sort_keys=True, indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, data: object, where: str = "catalog.json") -> SeriesCatalog:
        """Read the JSON form (a parsed object).

        Raises:
            ConfigError: a field is missing, of the wrong type, or invalid; the message
                names it.
        """
        obj = _Obj(data, where)
        schema = obj.integer("schema")
        if schema != SCHEMA:
            raise ConfigError(f"{obj.field('schema')}: version {schema}, this reads {SCHEMA}")
        return obj.build(
            cls,
            series=obj.text("series"),
            vehicle=obj.get("vehicle", (str, type(None)), None),
            size_scale=obj.number("size_scale"),
            ilevels=obj.items("ilevels", ILevelRelease.from_json),
            ecus=obj.items("ecus", EcuInfo.from_json),
            units=obj.items("units", UnitInfo.from_json),
            coding_rules=obj.items("coding_rules", CodingRule.from_json, optional=True),
            fsc=obj.items("fsc", FscApplication.from_json, optional=True),
            retrofits=obj.items("retrofits", Retrofit.from_json, optional=True),
            dtcs=obj.items("dtcs", DtcDescription.from_json, optional=True),
        )

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "catalog.json") -> SeriesCatalog:
        """Parse and read catalog JSON bytes.

        Raises:
            ConfigError: not JSON, or not a valid catalog.
        """
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: not JSON: {exc}") from exc
        return cls.from_json(parsed, where)


def _unique(values: list[Any], where: str, key: str) -> None:
    seen: set[Any] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise ConfigError(f"{where}[{i}]: {key} {value!r} is listed twice")
        seen.add(value)
