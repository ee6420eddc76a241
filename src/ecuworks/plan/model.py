"""The measures plan (the trade's TAL): its actions, vehicle-wide steps, schedule and JSON.

A :class:`Plan` is data: what :func:`ecuworks.plan.build.build_plan` computes from an
identification and the P-Data, what ``ecuworks plan --json`` writes, and what
``ecuworks apply`` reads back and executes. Its JSON carries a ``schema`` version and the
fingerprint of the vehicle it was made for, so that it is never applied to a vehicle that
changed since (DESIGN.md).

Trade names, kept as the category values: ``IdBackup`` (individual data backup),
``HwInstall`` (hardware installed or swapped by the technician: a retrofit, a replacement),
``BlFlash`` (bootloader), ``SwDeploy`` (application software, gateway table, IBA data),
``CdDeploy`` (coding), ``FscDeploy`` (enabling codes), ``IdRestore`` (individual data
restore); DOMAIN.md lists them in that execution order.

Every job runs as a plan (:attr:`Plan.job`): ``program`` (the main job), ``code`` (VO
coding), ``expert-coding`` (one parameter set by hand), ``enable`` (enabling codes),
``retrofit``, ``replace`` and ``diag`` (the fault memory cleared); so each is journaled
and resumable the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from ecuworks.errors import ConfigError

__all__ = [
    "CATEGORY_ORDER",
    "JOBS",
    "SCHEMA",
    "Action",
    "Category",
    "EcuSlot",
    "Plan",
    "Step",
    "UnknownEcu",
]

SCHEMA: Final = 2
# Plans of schema 1 (before jobs, coding parameters and enabling codes) read as programming.
_READABLE: Final = frozenset({1, SCHEMA})
JOBS: Final = ("program", "code", "expert-coding", "enable", "retrofit", "replace", "diag")


class Category(StrEnum):
    """TAL categories of one ECU's actions, by their trade names."""

    ID_BACKUP = "IdBackup"
    HW_INSTALL = "HwInstall"
    BL_FLASH = "BlFlash"
    SW_DEPLOY = "SwDeploy"
    CD_DEPLOY = "CdDeploy"
    FSC_DEPLOY = "FscDeploy"
    ID_RESTORE = "IdRestore"


CATEGORY_ORDER: Final = tuple(Category)
"""Execution order of the categories on one ECU (DOMAIN.md)."""

FLASH_CATEGORIES: Final = frozenset({Category.BL_FLASH, Category.SW_DEPLOY})


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """One action on one ECU.

    Attributes:
        ecu: the ECU's diagnostic address.
        ecu_name: its short name (``"DME"``).
        category: the TAL category.
        unit: the SGBM-ID it installs (flash and coding actions), else None.
        replaces: the SGBM-ID installed now that ``unit`` replaces, if any.
        reason: why, in a sentence a technician reads.
        bytes: bytes that cross the ECU's bus (the compressed size when compressed).
        seconds: estimated duration of the action alone.
        parameters: expert coding (CdDeploy): only these parameters are written, name ->
            value; empty for VO coding, which codes every parameter from the VO.
        app_id: FscDeploy: the application whose enabling code is obtained and written;
            None restores the codes the IdBackup of this ECU saved (a replacement).
    """

    ecu: int
    ecu_name: str
    category: Category
    unit: str | None
    reason: str
    replaces: str | None = None
    bytes: int = 0
    seconds: float = 0.0
    parameters: Mapping[str, str] = field(default_factory=dict, hash=False)
    app_id: int | None = None

    @property
    def flashes(self) -> bool:
        """True for actions that erase and write flash (BlFlash, SwDeploy)."""
        return self.category in FLASH_CATEGORIES

    @property
    def key(self) -> str:
        """Stable identity within a plan, used by the journal: ``0x12/SwDeploy/SWFL-...``,
        ``0x63/FscDeploy/app-0x0041``, ``0x63/CdDeploy/feature_3000``."""
        what = self.unit
        if self.app_id is not None:
            what = f"app-0x{self.app_id:04X}"
        elif self.parameters:
            what = ",".join(sorted(self.parameters))
        return f"0x{self.ecu:02X}/{self.category}/{what or '-'}"

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "ecu": self.ecu,
            "ecu_name": self.ecu_name,
            "category": str(self.category),
            "unit": self.unit,
            "replaces": self.replaces,
            "reason": self.reason,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "parameters": dict(self.parameters),
            "app_id": self.app_id,
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> Action:
        """Read the JSON form.

        Raises:
            ConfigError: a missing or invalid field, named.
        """
        obj = _obj(data, where)
        try:
            category = Category(obj["category"])
        except (KeyError, ValueError):
            raise ConfigError(
                f"{where}.category: one of {', '.join(CATEGORY_ORDER)} is needed"
            ) from None
        return cls(
            ecu=_int(obj, "ecu", where),
            ecu_name=_str(obj, "ecu_name", where),
            category=category,
            unit=_opt_str(obj, "unit", where),
            replaces=_opt_str(obj, "replaces", where),
            reason=_str(obj, "reason", where),
            bytes=_int(obj, "bytes", where),
            seconds=_num(obj, "seconds", where),
            parameters=_parameters(obj, where),
            app_id=None if obj.get("app_id") is None else _int(obj, "app_id", where),
        )


def _parameters(obj: dict[str, Any], where: str) -> dict[str, str]:
    value = obj.get("parameters", {})
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"{where}.parameters: an object of parameter names to values is needed")
    return dict(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One vehicle-wide step (flash mode, communication off, I-level written...).

    Attributes:
        name: machine name, e.g. ``"energy-mode-flash"``, ``"write-ilevel"``.
        phase: ``"prepare"`` (before any ECU action) or ``"finish"`` (after all of them).
        reason: why, for a technician.
    """

    name: str
    phase: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"name": self.name, "phase": self.phase, "reason": self.reason}

    @classmethod
    def from_json(cls, data: object, where: str) -> Step:
        """Read the JSON form."""
        obj = _obj(data, where)
        phase = _str(obj, "phase", where)
        if phase not in ("prepare", "finish"):
            raise ConfigError(f"{where}.phase: 'prepare' or 'finish', got {phase!r}")
        return cls(name=_str(obj, "name", where), phase=phase, reason=_str(obj, "reason", where))


@dataclass(frozen=True, slots=True, kw_only=True)
class EcuSlot:
    """When one ECU's actions run in the schedule, on which lane.

    Attributes:
        ecu: diagnostic address.
        bus: the bus (lane) it sits on.
        start_s: estimated start, seconds after the plan starts.
        end_s: estimated end.
        after: addresses that must finish first (the gateway, for every other ECU).
    """

    ecu: int
    bus: str
    start_s: float
    end_s: float
    after: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "ecu": self.ecu,
            "bus": self.bus,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "after": list(self.after),
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> EcuSlot:
        """Read the JSON form."""
        obj = _obj(data, where)
        after = obj.get("after", [])
        if not isinstance(after, list) or not all(isinstance(a, int) for a in after):
            raise ConfigError(f"{where}.after: a list of addresses is needed")
        return cls(
            ecu=_int(obj, "ecu", where),
            bus=_str(obj, "bus", where),
            start_s=_num(obj, "start_s", where),
            end_s=_num(obj, "end_s", where),
            after=tuple(after),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEcu:
    """An ECU the plan does not touch because P-Data cannot say what it should have.

    Attributes:
        ecu: diagnostic address.
        why: what is missing (no metadata, hardware not released for the I-level...).
    """

    ecu: int
    why: str

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"ecu": self.ecu, "why": self.why}

    @classmethod
    def from_json(cls, data: object, where: str) -> UnknownEcu:
        """Read the JSON form."""
        obj = _obj(data, where)
        return cls(ecu=_int(obj, "ecu", where), why=_str(obj, "why", where))


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A measures plan for one vehicle.

    Attributes:
        vin: the vehicle's VIN.
        series: its I-level series.
        vo: the vehicle order text the plan was computed for.
        gateway: address of the gateway (VIN, VO, I-levels).
        actual_ilevel: the vehicle's current I-level.
        target_ilevel: the I-level the plan brings it to.
        vehicle_fingerprint: :attr:`Identification.fingerprint` of the identified vehicle.
        actual_svt: the SVT read, ``{address: [SGBM-ID, ...]}``.
        target_svt: the SVT the vehicle has after the plan, same shape.
        actions: the ECU actions, in execution order per ECU.
        steps: the vehicle-wide steps.
        schedule: one slot per ECU with actions.
        unknown: ECUs P-Data cannot plan for (reported, never guessed).
        estimate_s: estimated wall time of the whole plan.
        lower_bound_s: the physical lower bound (DOMAIN.md's formula).
        lower_bound_terms: each term of the bound, by name, in seconds.
        critical_path: what bounds the estimate, human-readable, first to last.
        filter: the filter the plan was made with, as given (JSON form).
        filtered: the actions the filter removed, each reason saying which rule did.
        job: which job the plan is for, one of :data:`JOBS`.
    """

    vin: str
    series: str
    vo: str | None
    gateway: int
    actual_ilevel: str | None
    target_ilevel: str
    vehicle_fingerprint: str
    actual_svt: Mapping[int, tuple[str, ...]]
    target_svt: Mapping[int, tuple[str, ...]]
    actions: tuple[Action, ...]
    steps: tuple[Step, ...] = ()
    schedule: tuple[EcuSlot, ...] = ()
    unknown: tuple[UnknownEcu, ...] = ()
    estimate_s: float = 0.0
    lower_bound_s: float = 0.0
    lower_bound_terms: Mapping[str, float] = field(default_factory=dict)
    critical_path: tuple[str, ...] = ()
    filter: Mapping[str, Any] = field(default_factory=dict)
    filtered: tuple[Action, ...] = ()
    job: str = "program"

    def actions_of(self, ecu: int) -> list[Action]:
        """The actions on one ECU, in execution order."""
        return [a for a in self.actions if a.ecu == ecu]

    @property
    def ecus(self) -> list[int]:
        """Addresses of the ECUs with actions, in schedule order (start time, address)."""
        if self.schedule:
            return [s.ecu for s in sorted(self.schedule, key=lambda s: (s.start_s, s.ecu))]
        return sorted({a.ecu for a in self.actions})

    @property
    def flash_bytes(self) -> int:
        """Total bytes every flash action transfers."""
        return sum(a.bytes for a in self.actions if a.flashes)

    def to_json(self) -> dict[str, Any]:
        """The ``plan --json`` object (DESIGN.md)."""
        return {
            "schema": SCHEMA,
            "job": self.job,
            "vin": self.vin,
            "series": self.series,
            "vo": self.vo,
            "gateway": self.gateway,
            "actual_ilevel": self.actual_ilevel,
            "target_ilevel": self.target_ilevel,
            "vehicle_fingerprint": self.vehicle_fingerprint,
            "actual_svt": _svt_json(self.actual_svt),
            "target_svt": _svt_json(self.target_svt),
            "actions": [a.to_json() for a in self.actions],
            "steps": [s.to_json() for s in self.steps],
            "schedule": [s.to_json() for s in self.schedule],
            "unknown": [u.to_json() for u in self.unknown],
            "estimate_s": round(self.estimate_s, 3),
            "lower_bound_s": round(self.lower_bound_s, 3),
            "lower_bound_terms": {k: round(v, 3) for k, v in self.lower_bound_terms.items()},
            "critical_path": list(self.critical_path),
            "filter": dict(self.filter),
            "filtered": [a.to_json() for a in self.filtered],
        }

    def to_bytes(self) -> bytes:
        """The JSON text, indented, with a final newline."""
        return (json.dumps(self.to_json(), indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: object, where: str = "plan") -> Plan:
        """Read the JSON form.

        Raises:
            ConfigError: not a plan of this schema, or a field missing or invalid (named).
        """
        obj = _obj(data, where)
        schema = obj.get("schema")
        if schema not in _READABLE:
            raise ConfigError(
                f"{where}: plan schema {schema!r}, this version of ecuworks reads {SCHEMA}; "
                "make the plan again with 'ecuworks plan'"
            )
        terms = obj.get("lower_bound_terms", {})
        if not isinstance(terms, dict):
            raise ConfigError(f"{where}.lower_bound_terms: an object is needed")
        flt = obj.get("filter", {})
        if not isinstance(flt, dict):
            raise ConfigError(f"{where}.filter: an object is needed")
        path = obj.get("critical_path", [])
        if not isinstance(path, list):
            raise ConfigError(f"{where}.critical_path: a list is needed")
        job = obj.get("job", "program")
        if job not in JOBS:
            raise ConfigError(f"{where}.job: one of {', '.join(JOBS)} is needed, got {job!r}")
        return cls(
            job=job,
            vin=_str(obj, "vin", where),
            series=_str(obj, "series", where),
            vo=_opt_str(obj, "vo", where),
            gateway=_int(obj, "gateway", where),
            actual_ilevel=_opt_str(obj, "actual_ilevel", where),
            target_ilevel=_str(obj, "target_ilevel", where),
            vehicle_fingerprint=_str(obj, "vehicle_fingerprint", where),
            actual_svt=_svt(obj, "actual_svt", where),
            target_svt=_svt(obj, "target_svt", where),
            actions=tuple(
                Action.from_json(a, f"{where}.actions[{i}]")
                for i, a in enumerate(_list(obj, "actions", where))
            ),
            steps=tuple(
                Step.from_json(s, f"{where}.steps[{i}]")
                for i, s in enumerate(_list(obj, "steps", where))
            ),
            schedule=tuple(
                EcuSlot.from_json(s, f"{where}.schedule[{i}]")
                for i, s in enumerate(_list(obj, "schedule", where))
            ),
            unknown=tuple(
                UnknownEcu.from_json(u, f"{where}.unknown[{i}]")
                for i, u in enumerate(_list(obj, "unknown", where))
            ),
            estimate_s=_num(obj, "estimate_s", where),
            lower_bound_s=_num(obj, "lower_bound_s", where),
            lower_bound_terms={str(k): float(v) for k, v in terms.items()},
            critical_path=tuple(str(p) for p in path),
            filter=flt,
            filtered=tuple(
                Action.from_json(a, f"{where}.filtered[{i}]")
                for i, a in enumerate(_list(obj, "filtered", where))
            ),
        )

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "plan") -> Plan:
        """Parse plan JSON bytes.

        Raises:
            ConfigError: not JSON, or not a valid plan.
        """
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: not JSON ({exc}); is this a plan file?") from exc
        return cls.from_json(parsed, where)


# --- JSON helpers -------------------------------------------------------------------------


def _svt_json(svt: Mapping[int, tuple[str, ...]]) -> dict[str, list[str]]:
    return {str(address): list(units) for address, units in sorted(svt.items())}


def _obj(data: object, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a JSON object is needed")
    return data


def _str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: text is needed")
    return value


def _opt_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: text or null is needed")
    return value


def _int(obj: dict[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{where}.{key}: an integer is needed")
    return value


def _num(obj: dict[str, Any], key: str, where: str) -> float:
    value = obj.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ConfigError(f"{where}.{key}: a number is needed")
    return float(value)


def _list(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{where}.{key}: a list is needed")
    return value


def _svt(obj: dict[str, Any], key: str, where: str) -> dict[int, tuple[str, ...]]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}.{key}: an object of address -> SGBM-IDs is needed")
    out: dict[int, tuple[str, ...]] = {}
    for address, units in value.items():
        try:
            number = int(address)
        except ValueError:
            raise ConfigError(f"{where}.{key}: {address!r} is no address") from None
        if not isinstance(units, list) or not all(isinstance(u, str) for u in units):
            raise ConfigError(f"{where}.{key}.{address}: a list of SGBM-IDs is needed")
        out[number] = tuple(units)
    return out
