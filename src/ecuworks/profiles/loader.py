"""Read vehicle profiles from TOML: the shipped ones, plugins', or a user's file.

:func:`parse_profile` turns TOML text into a checked :class:`VehicleProfile` and does no
I/O; :func:`load_profile` finds the text (a shipped name, an entry point of the group
``ecuworks.vehicle_profiles``, or a path) and reads it.

The TOML layout, in brief (``data/f-series.toml`` is a full example)::

    name = "f-series"               # what --vehicle takes
    series = "F030"                 # I-level series
    vin = "WBA8E9C50GK123456"
    vo = "8E91#0715*A96%LCSW&$1CA$205..."
    transports = ["hsfz", "doip"]   # doip, hsfz, dcan
    gateway_address = 0x10
    size_scale = 0.02               # applied to every region size below
    vci_firmware = "ICOM-NEXT 04.07.1"   # optional
    fsc_public_key = "<64 hex digits>"   # optional: Ed25519 key whose FSCs the ECUs accept

    [ilevel]                        # current, last, shipment
    [battery]                       # volts, charger (both optional)

    [[buses]]                       # name, kind, bitrate, data_bitrate (CAN FD only)

    [[ecus]]                        # the fields of EcuProfile; secrets and data in hex
    coding = { 0x3000 = "01 04" }   # DID = hex bytes; individual_data alike
    fsc = ["4653433157...", ...]    # optional: enabling code records installed, in hex
    [[ecus.regions]]                # class, address, size, unit
    size = "6 MiB"                  # real bytes: an integer, or a number and B/KiB/MiB/GiB

Every error is a :class:`~ecuworks.errors.ConfigError` that names the file and the field,
e.g. ``f-series.toml: ecus[3] (DME, 0x12): regions[1]: ...``. Keys the loader does not know
are errors too, so that a misspelt key is not silently ignored.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Mapping
from fractions import Fraction
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

from ecuworks.errors import ConfigError
from ecuworks.profiles.model import (
    FLASH_PAGE,
    BusProfile,
    EcuProfile,
    RegionProfile,
    VehicleProfile,
    find_overlap,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "available_profiles",
    "load_profile",
    "parse_profile",
    "scaled_size",
]

ENTRY_POINT_GROUP = "ecuworks.vehicle_profiles"
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(B|KiB|MiB|GiB)\s*")
_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
_DID = re.compile(r"0[xX][0-9A-Fa-f]{1,4}")
_T = TypeVar("_T")


def scaled_size(real: int, size_scale: float) -> int:
    """Return a region's size in the simulated car: ``real * size_scale`` rounded up to 4 KiB.

    The scale is taken as the decimal it is written as (0.02 is exactly 1/50), so that a
    size that scales to a whole number of pages is not rounded up by binary noise.

    Raises:
        ConfigError: ``size_scale`` is not a positive finite number.
    """
    if not math.isfinite(size_scale) or size_scale <= 0:
        raise ConfigError(f"size_scale must be a positive number, got {size_scale}")
    pages = math.ceil(Fraction(real) * Fraction(str(size_scale)) / FLASH_PAGE)
    return max(1, pages) * FLASH_PAGE


class _Table:
    """One TOML table being read: typed getters whose errors name the field."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a table, got {_kind(data)}")
        self.data: dict[str, Any] = data
        self.where = where
        self._asked: set[str] = set()

    def field(self, key: str) -> str:
        """Return how errors name ``key`` of this table."""
        return f"{self.where}: {key}" if self.where else key

    def _get(self, key: str, kind: Callable[[object], bool], shape: str, default: object) -> Any:
        self._asked.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                raise ConfigError(f"{self.field(key)}: missing; expected {shape}")
            return default
        value = self.data[key]
        if not kind(value):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
            raise ConfigError(f"{self.field(key)}: expected {shape}, got {_kind(value)} {shown}")
        return value

    def text(self, key: str, default: str | None = None) -> str:
        """A string; required unless a default is given."""
        return str(self._get(key, _is(str), "a string", _required(default)))

    def integer(self, key: str, default: int | None = None) -> int:
        """An integer (0x12 is fine); required unless a default is given."""
        return int(self._get(key, _is_int, "an integer", _required(default)))

    def optional_integer(self, key: str) -> int | None:
        """An integer, or None when absent."""
        value = self._get(key, _is_int, "an integer", None)
        return None if value is None else int(value)

    def number(self, key: str, default: float | None = None) -> float:
        """An integer or float; required unless a default is given."""
        return float(self._get(key, _is_number, "a number", _required(default)))

    def flag(self, key: str, default: bool) -> bool:
        """A boolean."""
        return bool(self._get(key, _is(bool), "true or false", default))

    def texts(self, key: str, default: list[str] | None = None) -> list[str]:
        """A list of strings."""
        value = self._get(key, _list_of(_is(str)), "a list of strings", _required(default))
        return list(value)

    def integers(self, key: str, default: list[int] | None = None) -> list[int]:
        """A list of integers."""
        value = self._get(key, _list_of(_is_int), "a list of integers", _required(default))
        return list(value)

    def hex_bytes(self, key: str) -> bytes:
        """Bytes written as hex digits, spaces between bytes allowed."""
        return _hex(self.text(key), self.field(key))

    def optional_hex_bytes(self, key: str) -> bytes | None:
        """Bytes written as hex digits, or None when absent."""
        value = self._get(key, _is(str), "hex bytes as a string", None)
        return None if value is None else _hex(value, self.field(key))

    def size(self, key: str) -> int:
        """A size in bytes: an integer, or a string such as ``"256 KiB"``."""
        value = self._get(key, _is_size, 'bytes as an integer or a string like "256 KiB"', None)
        if value is None:
            raise ConfigError(f'{self.field(key)}: missing; expected bytes, e.g. "256 KiB"')
        if isinstance(value, int):
            size = Fraction(value)
        else:
            match = _SIZE.fullmatch(value)
            if match is None:
                raise ConfigError(
                    f"{self.field(key)}: {value!r} is no size; write bytes as an integer, or a "
                    'number and B, KiB, MiB or GiB, e.g. "1.5 MiB"'
                )
            size = Fraction(match[1]) * _UNITS[match[2]]
        if size.denominator != 1 or size <= 0:
            raise ConfigError(
                f"{self.field(key)}: {value!r} is not a positive whole number of bytes"
            )
        return int(size)

    def did_map(self, key: str) -> dict[int, bytes]:
        """A table of DID = hex bytes, e.g. ``{ 0x3000 = "01 04" }``."""
        table = self.table(key, optional=True)
        result: dict[int, bytes] = {}
        for did_text, value in table.data.items():
            table._asked.add(did_text)
            field = table.field(did_text)
            if not _DID.fullmatch(did_text):
                raise ConfigError(
                    f"{field}: a DID is written as 0x and 1-4 hex digits, e.g. 0x3000"
                )
            if not isinstance(value, str):
                raise ConfigError(f"{field}: expected hex bytes as a string, got {_kind(value)}")
            result[int(did_text, 16)] = _hex(value, field)
        return result

    def table(self, key: str, *, optional: bool = False) -> _Table:
        """A sub-table (``[key]``); an empty one when absent and ``optional``."""
        value = self._get(key, _is(dict), "a table", {} if optional else _REQUIRED)
        return _Table(value, self.field(key))

    def tables(self, key: str) -> list[_Table]:
        """An array of tables (``[[key]]``)."""
        value = self._get(key, _list_of(_is(dict)), f"[[{key}]] tables", _REQUIRED)
        prefix = f"{self.where}: " if self.where else ""
        return [_Table(item, f"{prefix}{key}[{i}]") for i, item in enumerate(value)]

    def finish(self) -> None:
        """Refuse keys no getter asked for: they are misspelt or misplaced."""
        unknown = sorted(set(self.data) - self._asked)
        if unknown:
            known = ", ".join(sorted(self._asked))
            raise ConfigError(f"{self.field(unknown[0])}: unknown key (known here: {known})")


_REQUIRED = object()


def _required(default: object) -> object:
    """Map a getter's ``None`` default to "required"."""
    return _REQUIRED if default is None else default


def _is(kind: type) -> Callable[[object], bool]:
    return lambda value: isinstance(value, kind)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_size(value: object) -> bool:
    return _is_int(value) or isinstance(value, str)


def _list_of(item: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda value: isinstance(value, list) and all(item(v) for v in value)


def _kind(value: object) -> str:
    """Name a TOML value's type as a TOML user would."""
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
    names |= {list: "an array", dict: "a table"}
    return names.get(type(value), type(value).__name__)


def _hex(text: str, field: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ConfigError(
            f"{field}: {text!r} is not hex bytes (pairs of 0-9/a-f, spaces between bytes)"
        ) from None


def _build(where: str, factory: Callable[..., _T], **fields: Any) -> _T:
    """Build a model object; prefix its ConfigError with where it was read from."""
    try:
        return factory(**fields)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}" if where else str(exc)) from exc


def _region(table: _Table, scale: float) -> tuple[RegionProfile, int]:
    """Read one ``[[ecus.regions]]``; return it scaled and its real size."""
    process_class = table.text("class")
    address = table.integer("address")
    real = table.size("size")
    unit = table.text("unit")
    table.finish()
    region = _build(
        table.where,
        RegionProfile,
        process_class=process_class,
        address=address,
        size=scaled_size(real, scale),
        unit=unit,
    )
    return region, real


def _ecu(table: _Table, scale: float) -> EcuProfile:
    """Read one ``[[ecus]]``."""
    address = table.integer("address")
    name = table.text("name")
    table.where = f"{table.where} ({name}, 0x{address:02X})"
    read = [_region(t, scale) for t in table.tables("regions")]
    # Real sizes must fit too: the scaled car is a model of the real one.
    overlap = find_overlap((r.process_class, r.address, real) for r, real in read)
    if overlap is not None:
        raise ConfigError(f"{table.where}: {overlap} (at real size)")
    fields = {
        "address": address,
        "name": name,
        "variant": table.text("variant"),
        "bus": table.text("bus"),
        "hardware": table.text("hardware"),
        "regions": tuple(region for region, _ in read),
        "cafd": tuple(table.texts("cafd", [])),
        "max_block_length": table.integer("max_block_length"),
        "isotp_stmin_ms": table.number("isotp_stmin_ms", 0.0),
        "isotp_block_size": table.integer("isotp_block_size", 0),
        "erase_ms_per_kib": table.number("erase_ms_per_kib"),
        "write_kib_s": table.number("write_kib_s"),
        "boot_ms": table.number("boot_ms"),
        "security_algorithm": table.text("security_algorithm", "hmac-sha256"),
        "security_secret": table.hex_bytes("security_secret"),
        "programming_counter": table.integer("programming_counter", 0),
        "programming_counter_max": table.integer("programming_counter_max", 1000),
        "coding": table.did_map("coding"),
        "individual_data": table.did_map("individual_data"),
        "dtcs": tuple(table.integers("dtcs", [])),
        "fsc": tuple(
            _hex(record, f"{table.field('fsc')}[{i}]")
            for i, record in enumerate(table.texts("fsc", []))
        ),
    }
    table.finish()
    return _build(table.where, EcuProfile, **fields)


def parse_profile(
    text: str | bytes, *, source: str = "<profile>", size_scale: float | None = None
) -> VehicleProfile:
    """Build a vehicle from TOML text, without I/O.

    Args:
        text: the TOML document (bytes are decoded as UTF-8).
        source: how errors name the document, usually its file name.
        size_scale: overrides the document's ``size_scale``.

    Returns:
        The checked vehicle, region sizes scaled.

    Raises:
        ConfigError: the text is no TOML or describes no valid vehicle; the message starts
            with ``source`` and names the field.
    """
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        document = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return _vehicle(_Table(document, ""), size_scale)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def parse_ecu(table: Mapping[str, Any], *, size_scale: float, source: str = "<ecu>") -> EcuProfile:
    """Build one ECU from a mapping laid out like an ``[[ecus]]`` table (e.g. JSON).

    The simulator's ``POST /ecus`` (a retrofit: a new ECU is installed) takes it.

    Raises:
        ConfigError: the mapping describes no valid ECU; the message names the field.
    """
    return _ecu(_Table(dict(table), source), size_scale)


def _vehicle(top: _Table, size_scale: float | None) -> VehicleProfile:
    """Read the whole document."""
    scale = top.number("size_scale", 1.0)
    if size_scale is not None:
        scale = size_scale
    if not math.isfinite(scale) or scale <= 0:
        raise ConfigError(f"size_scale must be a positive number, got {scale}")
    ilevel = top.table("ilevel")
    current, last, shipment = (ilevel.text(k) for k in ("current", "last", "shipment"))
    ilevel.finish()
    battery = top.table("battery", optional=True)
    volts, charger = battery.number("volts", 12.6), battery.flag("charger", False)
    battery.finish()
    buses = []
    for table in top.tables("buses"):
        fields = {
            "name": table.text("name"),
            "kind": table.text("kind"),
            "bitrate": table.integer("bitrate"),
            "data_bitrate": table.optional_integer("data_bitrate"),
        }
        table.finish()
        buses.append(_build(table.where, BusProfile, **fields))
    ecus = [_ecu(table, scale) for table in top.tables("ecus")]
    fields = {
        "name": top.text("name"),
        "series": top.text("series"),
        "vin": top.text("vin"),
        "vo": top.text("vo"),
        "ilevel_current": current,
        "ilevel_last": last,
        "ilevel_shipment": shipment,
        "transports": tuple(top.texts("transports")),
        "gateway_address": top.integer("gateway_address", 0x10),
        "buses": tuple(buses),
        "ecus": tuple(ecus),
        "size_scale": scale,
        "battery_volts": volts,
        "charger": charger,
        "vci_firmware": top.text("vci_firmware", "ICOM-NEXT 04.07.1"),
        "fsc_public_key": top.optional_hex_bytes("fsc_public_key"),
    }
    top.finish()
    return _build("", VehicleProfile, **fields)


def _shipped() -> dict[str, Traversable]:
    """The profiles in ``ecuworks/profiles/data``, by name."""
    data = resources.files("ecuworks.profiles").joinpath("data")
    return {
        item.name.removesuffix(".toml"): item
        for item in data.iterdir()
        if item.name.endswith(".toml") and item.is_file()
    }


def _entry_points() -> dict[str, metadata.EntryPoint]:
    """Installed plugins' profiles, by name."""
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available_profiles() -> list[str]:
    """Return the names :func:`load_profile` takes: shipped and plugins' profiles, sorted."""
    return sorted(_shipped().keys() | _entry_points().keys())


def load_profile(name_or_path: str | Path, *, size_scale: float | None = None) -> VehicleProfile:
    """Load a vehicle by name or from a TOML file.

    A string is looked up first among the shipped profiles, then among the entry points of
    the group ``ecuworks.vehicle_profiles``; a :class:`~pathlib.Path`, or a string with a
    path separator or ending in ``.toml``, is read as a file. An entry point names a
    function that takes no arguments and returns a path to a TOML file or a
    :class:`VehicleProfile`.

    Args:
        name_or_path: ``"f-series"``, a plugin's profile name, or a TOML file.
        size_scale: overrides the profile's ``size_scale`` (1.0 gives real-world sizes).

    Returns:
        The checked vehicle.

    Raises:
        ConfigError: unknown name (the message lists the available ones), unreadable file,
            or an invalid profile (the message names the file and the field).
    """
    if isinstance(name_or_path, str):
        shipped = _shipped()
        if name_or_path in shipped:
            item = shipped[name_or_path]
            return _read(item, item.name, size_scale)
        plugins = _entry_points()
        if name_or_path in plugins:
            return _from_entry_point(plugins[name_or_path], size_scale)
        if not ("/" in name_or_path or "\\" in name_or_path or name_or_path.endswith(".toml")):
            raise ConfigError(
                f"unknown vehicle profile {name_or_path!r}; available: "
                f"{', '.join(available_profiles())} (or give the path of a TOML file)"
            )
    path = Path(name_or_path)
    return _read(path, str(path), size_scale)


def _read(file: Traversable, source: str, size_scale: float | None) -> VehicleProfile:
    """Read and parse one TOML file."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{source}: cannot read the vehicle profile: {exc.strerror or exc}"
        ) from exc
    return parse_profile(data, source=source, size_scale=size_scale)


def _from_entry_point(entry: metadata.EntryPoint, size_scale: float | None) -> VehicleProfile:
    """Call a plugin's profile function; read the file it names, or take its profile."""
    where = f"vehicle profile {entry.name!r} (entry point {entry.value})"
    try:
        result = entry.load()()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    except Exception as exc:  # a plugin's failure, whatever it is, is a configuration error
        raise ConfigError(f"{where} failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(result, VehicleProfile):
        if size_scale is not None and size_scale != result.size_scale:
            raise ConfigError(
                f"{where} returns a built profile at size_scale {result.size_scale}; it cannot "
                f"be rescaled to {size_scale} (return the path of its TOML file instead)"
            )
        return result
    if isinstance(result, str | PathLike):
        path = Path(result)
        return _read(path, str(path), size_scale)
    if isinstance(result, Traversable):
        return _read(result, result.name, size_scale)
    raise ConfigError(
        f"{where} returned {type(result).__name__}; expected a path or a VehicleProfile"
    )
