"""Fault injection for the simulated vehicle: what to break, and when (sans-I/O).

The control API (``POST /faults``) adds faults here; the gateway and the protocol servers
ask this registry, once per request or connection, whether to misbehave. Every time is in
simulated seconds (docs/adr/0003) and is passed in, never read from a clock.

The four kinds, as JSON objects (docs/adr/0003, "Control API and faults"):

- ``{"kind": "drop", "after_bytes": N}``: the next tester connection is cut after the
  tester sent N more bytes on it.
- ``{"kind": "silence", "ecu": A}``: ECU A stops answering; with ``"count": n`` it ignores
  n requests, then answers again.
- ``{"kind": "nrc", "ecu": A, "service": S, "nth": N, "nrc": C}``: the Nth request of
  service S to ECU A, counted from when the fault was added, is answered ``7F S C``
  instead of its answer (once).
- ``{"kind": "sag", "at": T, "volts": V, "duration": D}``: the battery sags to V volts
  from T simulated seconds after the fault was added, for D seconds.

Byte fields (``ecu``, ``service``, ``nrc``) take a JSON integer or a ``"0x.."`` string.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from ecuworks.errors import ConfigError

__all__ = [
    "FAULT_KINDS",
    "DropFault",
    "Fault",
    "Faults",
    "NrcFault",
    "SagFault",
    "SilenceFault",
    "parse_fault",
]

MAX_VOLTS: Final = 30.0  # the battery model's range; the control API accepts the same


@dataclass(frozen=True, slots=True, kw_only=True)
class DropFault:
    """Cut the next tester connection after the tester sent ``after_bytes`` more bytes."""

    kind: ClassVar[str] = "drop"
    after_bytes: int

    def to_json(self) -> dict[str, Any]:
        """The fault as the control API shows it."""
        return {"kind": self.kind, "after_bytes": self.after_bytes}


@dataclass(frozen=True, slots=True, kw_only=True)
class SilenceFault:
    """ECU ``ecu`` does not answer; ``count`` requests long, or until cleared if None."""

    kind: ClassVar[str] = "silence"
    ecu: int
    count: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The fault as the control API shows it."""
        out: dict[str, Any] = {"kind": self.kind, "ecu": self.ecu}
        if self.count is not None:
            out["count"] = self.count
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class NrcFault:
    """The ``nth`` request of ``service`` to ``ecu`` is answered ``7F service nrc``, once."""

    kind: ClassVar[str] = "nrc"
    ecu: int
    service: int
    nth: int
    nrc: int

    def to_json(self) -> dict[str, Any]:
        """The fault as the control API shows it."""
        return {
            "kind": self.kind,
            "ecu": self.ecu,
            "service": self.service,
            "nth": self.nth,
            "nrc": self.nrc,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SagFault:
    """The battery drops to ``volts`` from ``at`` seconds after adding, for ``duration``."""

    kind: ClassVar[str] = "sag"
    at: float
    volts: float
    duration: float

    def to_json(self) -> dict[str, Any]:
        """The fault as the control API shows it."""
        return {"kind": self.kind, "at": self.at, "volts": self.volts, "duration": self.duration}


Fault = DropFault | SilenceFault | NrcFault | SagFault


# --- parsing ----------------------------------------------------------------------------


def _int_field(
    obj: Mapping[str, Any], name: str, kind: str, *, low: int, high: int | None = None
) -> int:
    value = obj[name]
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text, 16) if text[:2].lower() == "0x" else int(text, 10)
        except ValueError:
            raise ConfigError(
                f"{kind} fault: '{name}' must be an integer or a 0x-hex string, got {value!r}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{kind} fault: '{name}' must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ConfigError(f"{kind} fault: '{name}' must be {bound}, got {value}")
    return value


def _byte_field(obj: Mapping[str, Any], name: str, kind: str, *, low: int = 0) -> int:
    return _int_field(obj, name, kind, low=low, high=0xFF)


def _float_field(
    obj: Mapping[str, Any],
    name: str,
    kind: str,
    *,
    low: float,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{kind} fault: '{name}' must be a number, got {value!r}")
    number = float(value)
    too_low = number <= low if low_open else number < low
    if not math.isfinite(number) or too_low or (high is not None and number > high):
        bound = ("> " if low_open else ">= ") + f"{low:g}"
        if high is not None:
            bound += f" and <= {high:g}"
        raise ConfigError(f"{kind} fault: '{name}' must be {bound}, got {value!r}")
    return number


def _drop(obj: Mapping[str, Any]) -> DropFault:
    return DropFault(after_bytes=_int_field(obj, "after_bytes", "drop", low=0))


def _silence(obj: Mapping[str, Any]) -> SilenceFault:
    count = None
    if obj.get("count") is not None:
        count = _int_field(obj, "count", "silence", low=1)
    return SilenceFault(ecu=_byte_field(obj, "ecu", "silence"), count=count)


def _nrc(obj: Mapping[str, Any]) -> NrcFault:
    return NrcFault(
        ecu=_byte_field(obj, "ecu", "nrc"),
        service=_byte_field(obj, "service", "nrc"),
        nth=_int_field(obj, "nth", "nrc", low=1),
        nrc=_byte_field(obj, "nrc", "nrc", low=1),  # 0x00 is no NRC (ISO 14229-1, A.1)
    )


def _sag(obj: Mapping[str, Any]) -> SagFault:
    return SagFault(
        at=_float_field(obj, "at", "sag", low=0.0),
        volts=_float_field(obj, "volts", "sag", low=0.0, high=MAX_VOLTS),
        duration=_float_field(obj, "duration", "sag", low=0.0, low_open=True),
    )


# kind -> (required fields, optional fields, parser)
_KINDS: Final[
    dict[str, tuple[frozenset[str], frozenset[str], Callable[[Mapping[str, Any]], Fault]]]
] = {
    "drop": (frozenset({"after_bytes"}), frozenset(), _drop),
    "silence": (frozenset({"ecu"}), frozenset({"count"}), _silence),
    "nrc": (frozenset({"ecu", "service", "nth", "nrc"}), frozenset(), _nrc),
    "sag": (frozenset({"at", "volts", "duration"}), frozenset(), _sag),
}
FAULT_KINDS: Final = tuple(_KINDS)


def parse_fault(obj: Mapping[str, Any]) -> Fault:
    """Build a fault from its JSON object.

    Args:
        obj: one fault object, e.g. ``{"kind": "drop", "after_bytes": 100}``.

    Returns:
        The fault.

    Raises:
        ConfigError: the object is no fault: not a mapping, an unknown ``kind`` (the
            message lists the known ones), a missing or unknown field, or a value out of
            range; the message names the field.
    """
    if not isinstance(obj, Mapping):
        raise ConfigError(f"a fault must be a JSON object, got {type(obj).__name__}")
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ConfigError(
            f"unknown fault 'kind' {kind!r}: use one of {', '.join(map(repr, FAULT_KINDS))}"
        )
    required, optional, build = _KINDS[kind]
    keys = {k for k in obj if k != "kind"}
    if missing := sorted(required - keys):
        raise ConfigError(f"{kind} fault: missing field {', '.join(map(repr, missing))}")
    if unknown := sorted(str(k) for k in keys - required - optional):
        known = ", ".join(map(repr, sorted(required | optional)))
        raise ConfigError(
            f"{kind} fault: unknown field {', '.join(map(repr, unknown))} (known: {known})"
        )
    return build(obj)


# --- the registry -----------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class _Entry:
    id: int
    fault: Fault
    added_at: float
    seen: int = 0  # nrc: matching requests so far; silence: requests ignored so far

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "added_at": self.added_at}
        out.update(self.fault.to_json())
        match self.fault:
            case NrcFault():
                out["seen"] = self.seen
            case SilenceFault(count=int(count)):
                out["remaining"] = count - self.seen
            case SagFault(at=at, duration=duration):
                out["start"] = self.added_at + at
                out["end"] = self.added_at + at + duration
            case _:
                pass
        return out


@dataclass(slots=True)
class Faults:
    """The faults in force, and the queries the gateway and servers ask per request.

    Queries that count (``take_nrc``, ``silenced``, ``take_drop``) are meant to be asked
    exactly once per request or connection. A one-shot fault that fired disappears from
    ``list()``; sags stay until ``clear()``.
    """

    _entries: list[_Entry] = field(default_factory=list)
    _next_id: int = 1

    def add(self, fault: Fault, now: float) -> dict[str, Any]:
        """Put a fault in force.

        Args:
            fault: the fault, from ``parse_fault``.
            now: the simulated time; ``nrc`` counts and ``sag`` times start here.

        Returns:
            The stored fault as ``list()`` shows it, with its ``id``.
        """
        entry = _Entry(id=self._next_id, fault=fault, added_at=now)
        self._next_id += 1
        self._entries.append(entry)
        return entry.to_json()

    def remove(self, fault_id: int) -> bool:
        """Take one fault out of force; False if no fault has that id."""
        before = len(self._entries)
        self._entries = [e for e in self._entries if e.id != fault_id]
        return len(self._entries) != before

    def clear(self) -> None:
        """Take every fault out of force."""
        self._entries.clear()

    def list(self) -> builtins.list[dict[str, Any]]:
        """The faults in force, oldest first, as JSON-able dicts with ``id`` and progress."""
        return [e.to_json() for e in self._entries]

    def take_nrc(self, ecu: int, service: int) -> int | None:
        """Count one request of ``service`` to ``ecu``; the NRC to answer instead, if any.

        Ask it for every request that reaches the ECU (not for a silenced one). Every
        matching ``nrc`` fault counts the request; the first one reaching its ``nth``
        fires and is removed.

        Returns:
            The NRC byte: answer ``7F service nrc`` instead of the ECU's answer. None: let
            the ECU answer.
        """
        fired: _Entry | None = None
        for entry in self._entries:
            fault = entry.fault
            if isinstance(fault, NrcFault) and fault.ecu == ecu and fault.service == service:
                entry.seen += 1
                if fired is None and entry.seen >= fault.nth:
                    fired = entry
        if fired is None:
            return None
        self._entries.remove(fired)
        assert isinstance(fired.fault, NrcFault)
        return fired.fault.nrc

    def silenced(self, ecu: int) -> bool:
        """Whether ECU ``ecu`` ignores this request; counts it against a ``count``."""
        for entry in self._entries:
            fault = entry.fault
            if isinstance(fault, SilenceFault) and fault.ecu == ecu:
                if fault.count is not None:
                    entry.seen += 1
                    if entry.seen >= fault.count:
                        self._entries.remove(entry)
                return True
        return False

    def take_drop(self) -> int | None:
        """The byte budget of a new tester connection, consuming the oldest drop fault.

        Ask it once per accepted connection. Returns None when the connection may live.
        """
        for entry in self._entries:
            if isinstance(entry.fault, DropFault):
                self._entries.remove(entry)
                return entry.fault.after_bytes
        return None

    def sags(self) -> builtins.list[tuple[float, float, float]]:
        """Every sag as ``(start, end, volts)`` in absolute simulated seconds."""
        return [
            (e.added_at + e.fault.at, e.added_at + e.fault.at + e.fault.duration, e.fault.volts)
            for e in self._entries
            if isinstance(e.fault, SagFault)
        ]

    def sag_volts(self, now: float) -> float | None:
        """The lowest voltage a sag forces at ``now`` (start inclusive, end exclusive)."""
        active = [volts for start, end, volts in self.sags() if start <= now < end]
        return min(active) if active else None
