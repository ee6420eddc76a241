"""I-level releases: the target SVK of every ECU variant and hardware, units under VO conditions.

An *I-level* is a tested whole-vehicle release; for each one the catalog gives the target
SVK of every ECU variant and hardware (HWEL), the trade's KIS rules in data form. Units may
carry a VO condition (a head-unit unit only with option ``$609``).

Conditions are a small data structure, never code: ``{"option": "$609"}``,
``{"all_of": [...]}``, ``{"any_of": [...]}``, ``{"not": {...}}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ecuworks.errors import ConfigError, ParseError
from ecuworks.pdata.model._json import OPTION_CODE, JsonObject, check_name, sgbm_text
from ecuworks.wire.ilevel import ILevel
from ecuworks.wire.sgbm import ProcessClass, SgbmId
from ecuworks.wire.vo import VehicleOrder

__all__ = ["Condition", "ILevelRelease", "TargetSvk", "TargetUnit"]

_DATE = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])")
_CONDITION_KEYS = ("option", "all_of", "any_of", "not")


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
        if self.option is not None and not OPTION_CODE.fullmatch(self.option):
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
        obj = JsonObject(data, where)
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
        object.__setattr__(self, "sgbm", sgbm_text(self.sgbm, "sgbm"))

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        out: dict[str, Any] = {"sgbm": self.sgbm}
        if self.when is not None:
            out["when"] = self.when.to_json()
        return out

    @classmethod
    def from_json(cls, data: object, where: str) -> TargetUnit:
        """Read the JSON form."""
        obj = JsonObject(data, where)
        sgbm = obj.text("sgbm")
        when = obj.optional("when", Condition.from_json)
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
        check_name(self.variant, "variant")
        hw = sgbm_text(self.hardware, "hardware", (ProcessClass.HWEL,))
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
        obj = JsonObject(data, where)
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
        obj = JsonObject(data, where)
        return obj.build(
            cls,
            ilevel=obj.text("ilevel"),
            date=obj.text("date"),
            targets=obj.items("targets", TargetSvk.from_json),
        )
