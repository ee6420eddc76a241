"""The power guard: battery thresholds before and during programming.

DOMAIN.md ("Power"): the trade's tool checks the battery before and while it programs,
with thresholds per battery type (lead-acid: error below 9.95 V, warning below 12.55 V,
warning above 14.85 V, error above 15.55 V; LFP: 10.25 / 12.35 / 14.05 / 14.45 V), and the
service instructions want at least 13.0 V while programming, so a charger is required.

The guard's rules:

* **Before anything is written** the voltage must be known, at least
  :attr:`PowerPolicy.min_start_volts` (13.0 V by default) and at most the type's upper
  warning threshold; else :class:`~ecuworks.errors.Refused` (exit 3) naming the voltage,
  the threshold and what to do.
* **While programming** a reading below :attr:`PowerPolicy.pause_below` (the type's lower
  warning threshold by default) pauses the session: no new unit starts, work in progress
  finishes its unit. It goes on once the voltage is back at ``min_start_volts`` (the
  hysteresis keeps a battery hovering at the threshold from toggling every reading).
  Above the upper warning threshold it pauses too (a faulty charger).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from ecuworks.errors import ConfigError, Refused

__all__ = ["THRESHOLDS", "BatteryThresholds", "PowerPolicy", "Verdict"]

Verdict = Literal["ok", "low", "high", "unknown"]


@dataclass(frozen=True, slots=True)
class BatteryThresholds:
    """One battery type's thresholds, volts."""

    error_low: float
    warn_low: float
    warn_high: float
    error_high: float


THRESHOLDS: Final = {
    "lead-acid": BatteryThresholds(9.95, 12.55, 14.85, 15.55),
    "lfp": BatteryThresholds(10.25, 12.35, 14.05, 14.45),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerPolicy:
    """What voltage programming needs.

    Attributes:
        battery: ``"lead-acid"`` or ``"lfp"``.
        min_start_volts: the least voltage to start, and to go on after a pause.
        pause_volts: pause below this; None = the type's lower warning threshold.

    Raises:
        ConfigError: an unknown battery type or inconsistent thresholds.
    """

    battery: str = "lead-acid"
    min_start_volts: float = 13.0
    pause_volts: float | None = None

    def __post_init__(self) -> None:
        if self.battery not in THRESHOLDS:
            raise ConfigError(
                f"battery type {self.battery!r} is unknown; use one of {', '.join(THRESHOLDS)}"
            )
        limits = THRESHOLDS[self.battery]
        if not limits.error_low < self.min_start_volts < limits.warn_high:
            raise ConfigError(
                f"a start threshold of {self.min_start_volts:.2f} V is outside the "
                f"{self.battery} battery's range {limits.error_low:.2f}-{limits.warn_high:.2f} V"
            )
        if self.pause_below > self.min_start_volts:
            raise ConfigError(
                f"the pause threshold {self.pause_below:.2f} V is above the start "
                f"threshold {self.min_start_volts:.2f} V"
            )

    @property
    def limits(self) -> BatteryThresholds:
        """The battery type's thresholds."""
        return THRESHOLDS[self.battery]

    @property
    def pause_below(self) -> float:
        """Volts below which programming pauses."""
        return self.limits.warn_low if self.pause_volts is None else self.pause_volts

    def check_start(self, volts: float | None) -> None:
        """Refuse to start programming at this voltage.

        Raises:
            Refused: unknown, too low or too high (``check="voltage"``).
        """
        if volts is None:
            raise Refused(
                "the battery voltage could not be read from the vehicle, so programming "
                "would be unsafe; check the interface and the gateway, then retry",
                check="voltage",
            )
        if volts < self.min_start_volts:
            raise Refused(
                f"battery {volts:.2f} V is below the {self.min_start_volts:.2f} V programming "
                "needs; connect a charger (50-60 A class) and retry. Nothing was written.",
                check="voltage",
            )
        if volts > self.limits.warn_high:
            raise Refused(
                f"battery {volts:.2f} V is above the {self.limits.warn_high:.2f} V warning "
                f"threshold of a {self.battery} battery; check the charger's setting and "
                "retry. Nothing was written.",
                check="voltage",
            )

    def check_usable(self, volts: float | None) -> None:
        """Refuse a job that writes no flash (coding, enabling) outside the error thresholds.

        Raises:
            Refused: unknown, or beyond an error threshold (``check="voltage"``).
        """
        limits = self.limits
        if volts is None or not limits.error_low <= volts <= limits.error_high:
            shown = "could not be read" if volts is None else f"is {volts:.2f} V"
            raise Refused(
                f"the battery voltage {shown}; a {self.battery} battery must be between "
                f"{limits.error_low:.2f} and {limits.error_high:.2f} V to code or enable "
                "ECUs: connect a charger and retry. Nothing was written.",
                check="voltage",
            )

    def verdict(self, volts: float | None, *, paused: bool) -> Verdict:
        """Judge one reading while programming.

        Args:
            volts: the reading, None if it failed.
            paused: whether the session is paused now (then ``min_start_volts`` is needed
                to go on).
        """
        if volts is None:
            return "unknown"
        if volts > self.limits.warn_high:
            return "high"
        floor = self.min_start_volts if paused else self.pause_below
        return "low" if volts < floor else "ok"
