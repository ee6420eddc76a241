"""The 12 V supply of the simulated vehicle: battery, charger, load and scripted sags.

Sans-I/O: time and load are passed in. The model is deliberately small:

* **Charger on** (a 50-60 A workshop charger, which DOMAIN.md's service instructions
  require for programming): the charger regulates the terminal voltage, 14.2 V unloaded
  falling to 13.8 V at its rated current. Above its rating it is current-limited, the
  battery supplies the rest, and the voltage drops to what the battery alone gives for
  that remainder: programming more ECUs than the charger can carry pulls the voltage below
  13.0 V.
* **Charger off**: a lead-acid battery's resting (open-circuit) voltage, ~12.6 V charged,
  minus its internal resistance times the load (10 mΩ, battery plus cabling, typical of a
  70-90 Ah starter battery).
* **Load**: ignition on with every bus awake in flash mode (energy mode routine 0F0C
  switches big consumers off) draws :data:`BASE_LOAD_AMPS`; every ECU that is erasing or
  writing flash adds :data:`PROGRAMMING_AMPS_PER_ECU`.
* **Sags** (the fault ``{"kind": "sag", ...}``): between ``at`` and ``at + duration`` the
  voltage is held at or below the sag's volts.

What the trade's tool does with the voltage (DOMAIN.md, "Power"), lead-acid thresholds:
error below :data:`ERROR_LOW_VOLTS` 9.95 V, warning below :data:`WARN_LOW_VOLTS` 12.55 V,
warning above :data:`WARN_HIGH_VOLTS` 14.85 V, error above :data:`ERROR_HIGH_VOLTS`
15.55 V (LFP batteries: 10.25 / 12.35 / 14.05 / 14.45 V); and it must not drop below
:data:`PROGRAMMING_MIN_VOLTS` 13.0 V while programming. Below :data:`BROWNOUT_VOLTS`
(about 10 V) the ECUs reset.

>>> Battery(volts=12.6, charger=False).voltage(20.0)
12.4
>>> round(Battery(volts=12.6, charger=True).voltage(20.0), 2)
14.04
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from ecuworks.errors import ConfigError

__all__ = [
    "BASE_LOAD_AMPS",
    "BROWNOUT_VOLTS",
    "CHARGER_AMPS",
    "CHARGER_VOLTS_FULL_LOAD",
    "CHARGER_VOLTS_NO_LOAD",
    "ERROR_HIGH_VOLTS",
    "ERROR_LOW_VOLTS",
    "INTERNAL_RESISTANCE_OHMS",
    "PROGRAMMING_AMPS_PER_ECU",
    "PROGRAMMING_MIN_VOLTS",
    "WARN_HIGH_VOLTS",
    "WARN_LOW_VOLTS",
    "Battery",
    "Sag",
    "load_amps",
    "terminal_volts",
]

# DOMAIN.md, "Power": the trade tool's lead-acid thresholds and the service instruction.
ERROR_LOW_VOLTS: Final = 9.95
WARN_LOW_VOLTS: Final = 12.55
WARN_HIGH_VOLTS: Final = 14.85
ERROR_HIGH_VOLTS: Final = 15.55
PROGRAMMING_MIN_VOLTS: Final = 13.0
BROWNOUT_VOLTS: Final = 10.0
"""Below this the ECUs reset (``EcuServer.power_loss``): "below about 10 V the ECUs reset"."""

INTERNAL_RESISTANCE_OHMS: Final = 0.010
CHARGER_AMPS: Final = 50.0  # the low end of the 50-60 A class DOMAIN.md asks for
CHARGER_VOLTS_NO_LOAD: Final = 14.2
CHARGER_VOLTS_FULL_LOAD: Final = 13.8
BASE_LOAD_AMPS: Final = 20.0
PROGRAMMING_AMPS_PER_ECU: Final = 3.0


def load_amps(
    programming: int = 0,
    *,
    base: float = BASE_LOAD_AMPS,
    per_ecu: float = PROGRAMMING_AMPS_PER_ECU,
) -> float:
    """The vehicle's current draw with ``programming`` ECUs erasing or writing flash.

    >>> load_amps(0), load_amps(8)
    (20.0, 44.0)
    """
    return base + max(0, programming) * per_ecu


def terminal_volts(
    resting: float,
    *,
    charger: bool,
    load: float,
    resistance: float = INTERNAL_RESISTANCE_OHMS,
    charger_amps: float = CHARGER_AMPS,
) -> float:
    """Terminal voltage of a battery at ``resting`` volts under ``load`` amps.

    With the charger on and the load within its rating, the charger's regulated voltage
    (linear from :data:`CHARGER_VOLTS_NO_LOAD` to :data:`CHARGER_VOLTS_FULL_LOAD`);
    beyond its rating, the battery's voltage for the part the charger cannot supply.
    Never below 0.
    """
    load = max(0.0, load)
    if charger:
        if load <= charger_amps:
            droop = CHARGER_VOLTS_NO_LOAD - CHARGER_VOLTS_FULL_LOAD
            return CHARGER_VOLTS_NO_LOAD - droop * load / charger_amps
        load -= charger_amps
    return max(0.0, resting - resistance * load)


@dataclass(frozen=True, slots=True)
class Sag:
    """A scripted voltage sag: at most ``volts`` from ``at`` until ``at + duration``."""

    at: float
    volts: float
    duration: float

    @property
    def end(self) -> float:
        """When the sag is over."""
        return self.at + self.duration

    def active(self, now: float) -> bool:
        """Whether the sag holds the voltage down at ``now``."""
        return self.at <= now < self.end


def _check_volts(volts: float, what: str) -> float:
    if not (math.isfinite(volts) and volts >= 0):
        raise ConfigError(f"{what} {volts!r} V is not a voltage (a number, 0 or more)")
    return float(volts)


class Battery:
    """The vehicle's battery with an optional charger, and the sags scripted on it.

    Args:
        volts: resting (open-circuit) voltage; ~12.6 V for a charged lead-acid battery.
        charger: whether a charger is connected.
        resistance: internal resistance plus cabling, ohms.
        charger_amps: the charger's rated current.

    Raises:
        ConfigError: a voltage, resistance or rating that is not a non-negative number.
    """

    def __init__(
        self,
        *,
        volts: float = 12.6,
        charger: bool = False,
        resistance: float = INTERNAL_RESISTANCE_OHMS,
        charger_amps: float = CHARGER_AMPS,
    ) -> None:
        self.volts = _check_volts(volts, "battery voltage")
        self.charger = charger
        if not (math.isfinite(resistance) and resistance >= 0):
            raise ConfigError(f"internal resistance {resistance!r} ohm is not 0 or more")
        if not (math.isfinite(charger_amps) and charger_amps > 0):
            raise ConfigError(f"charger rating {charger_amps!r} A is not a positive current")
        self.resistance = resistance
        self.charger_amps = charger_amps
        self._sags: list[Sag] = []

    def set(self, *, volts: float | None = None, charger: bool | None = None) -> None:
        """Change the resting voltage and/or the charger (``POST /battery``).

        Raises:
            ConfigError: ``volts`` is not a voltage.
        """
        if volts is not None:
            self.volts = _check_volts(volts, "battery voltage")
        if charger is not None:
            self.charger = charger

    @property
    def sags(self) -> tuple[Sag, ...]:
        """The scripted sags, in the order they were added."""
        return tuple(self._sags)

    def sag(self, at: float, volts: float, duration: float) -> Sag:
        """Hold the voltage at or below ``volts`` from ``at`` for ``duration`` seconds.

        Raises:
            ConfigError: a voltage that is not one, or a duration that is not positive.
        """
        if not (math.isfinite(duration) and duration > 0):
            raise ConfigError(f"a sag lasts a positive number of seconds, not {duration!r}")
        sag = Sag(at=at, volts=_check_volts(volts, "sag voltage"), duration=duration)
        self._sags.append(sag)
        return sag

    def clear_sags(self, *, before: float | None = None) -> None:
        """Forget every sag, or only those over by ``before``."""
        if before is None:
            self._sags.clear()
        else:
            self._sags = [sag for sag in self._sags if sag.end > before]

    def voltage(self, load_amps: float) -> float:
        """Terminal voltage under ``load_amps``, ignoring sags."""
        return terminal_volts(
            self.volts,
            charger=self.charger,
            load=load_amps,
            resistance=self.resistance,
            charger_amps=self.charger_amps,
        )

    def voltage_at(self, now: float, load_amps: float) -> float:
        """Terminal voltage at simulated time ``now`` under ``load_amps``, sags included."""
        volts = self.voltage(load_amps)
        for sag in self._sags:
            if sag.active(now):
                volts = min(volts, sag.volts)
        return volts

    def browned_out(self, now: float, load_amps: float) -> bool:
        """Whether the voltage at ``now`` is below :data:`BROWNOUT_VOLTS` (ECUs reset)."""
        return self.voltage_at(now, load_amps) < BROWNOUT_VOLTS

    def next_change(self, now: float) -> float | None:
        """The next time after ``now`` a sag starts or ends, to re-check the voltage then."""
        times = [t for sag in self._sags for t in (sag.at, sag.end) if t > now]
        return min(times, default=None)
