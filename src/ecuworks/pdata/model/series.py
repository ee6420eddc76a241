"""The catalog of one series (``<series>/catalog.json``) and its canonical bytes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ecuworks.errors import ConfigError
from ecuworks.pdata.model._json import JsonObject
from ecuworks.pdata.model.bus import BusInfo
from ecuworks.pdata.model.ecu import EcuInfo
from ecuworks.pdata.model.release import ILevelRelease
from ecuworks.pdata.model.services import CodingRule, DtcDescription, FscApplication, Retrofit
from ecuworks.pdata.model.units import UnitInfo

__all__ = ["SCHEMA", "SeriesCatalog"]

SCHEMA = 1


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
        buses: the vehicles' buses (kind, bit rates), for time estimates; older catalogs
            have none, and estimates then assume the defaults of :mod:`ecuworks.plan`.
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
    buses: tuple[BusInfo, ...] = ()

    def __post_init__(self) -> None:
        for attr in (
            "ilevels",
            "ecus",
            "units",
            "coding_rules",
            "fsc",
            "retrofits",
            "dtcs",
            "buses",
        ):
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
        _unique([b.name for b in self.buses], "buses", "name")

    def bus(self, name: str) -> BusInfo | None:
        """Return the bus of that name, or None if the catalog does not describe it."""
        for bus in self.buses:
            if bus.name == name:
                return bus
        return None

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
            "buses": [b.to_json() for b in self.buses],
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
        obj = JsonObject(data, where)
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
            buses=obj.items("buses", BusInfo.from_json, optional=True),
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
