"""The simulated VCI ("ICOM" in the trade): identification and reservation (sans-I/O).

A workshop's vehicle interface is shared by several workstations, and exactly one of them
may drive the car at a time: a tester reserves the VCI for a lease, renews it while it
works, and releases it at the end; a lease that runs out frees the VCI for the next one
(DOMAIN.md, "VCI (ICOM)"). Every method takes ``now`` and never awaits, so under asyncio
each call is atomic: of two workstations reserving at once, exactly one wins.

The D-CAN bridge of the VCI (E-series cars) is ``ecuworks.sim.socketcand``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from ecuworks.errors import ConfigError, EcuworksError

__all__ = ["MAX_LEASE_S", "MAX_OWNER_LENGTH", "Reservation", "Vci", "VciBusy"]

MAX_OWNER_LENGTH: Final = 64
MAX_LEASE_S: Final = 24 * 3600.0  # a lease longer than a working day is surely a mistake


class VciBusy(EcuworksError):
    """Another tester holds the VCI's reservation.

    Defined here rather than in ``ecuworks.errors``: only the simulated VCI raises it.

    Attributes:
        owner: who holds the reservation.
        expires_in: seconds until that lease runs out unless renewed.
    """

    def __init__(self, message: str, *, owner: str, expires_in: float) -> None:
        super().__init__(message)
        self.owner = owner
        self.expires_in = expires_in


@dataclass(frozen=True, slots=True, kw_only=True)
class Reservation:
    """One tester's hold on the VCI until ``expires_at`` (the clock of ``now``)."""

    owner: str
    lease_s: float
    expires_at: float

    def expires_in(self, now: float) -> float:
        """Seconds of lease left at ``now`` (never negative)."""
        return max(0.0, self.expires_at - now)

    def to_json(self, now: float) -> dict[str, Any]:
        """The reservation as the control API shows it."""
        return {"owner": self.owner, "lease_s": self.lease_s, "expires_in": self.expires_in(now)}


def _check_owner(owner: object) -> str:
    if (
        not isinstance(owner, str)
        or not 1 <= len(owner) <= MAX_OWNER_LENGTH
        or not owner.isprintable()
        or not owner.strip()
    ):
        raise ConfigError(
            f"VCI owner must be 1 to {MAX_OWNER_LENGTH} printable characters, not blank "
            f"(e.g. the workstation's name), got {owner!r}"
        )
    return owner


class Vci:
    """The vehicle interface: what it reports, and who holds it.

    Args:
        firmware: the firmware version it reports, e.g. ``"ICOM-NEXT 04.07.1"``.
        vin_provider: the VIN of the connected vehicle, asked on every ``info``.
        battery_provider: the battery voltage it measures, asked on every ``info``.
    """

    def __init__(
        self,
        firmware: str,
        vin_provider: Callable[[], str],
        battery_provider: Callable[[], float],
    ) -> None:
        self.firmware = firmware
        self._vin = vin_provider
        self._battery = battery_provider
        self._reservation: Reservation | None = None

    def holder(self, now: float) -> Reservation | None:
        """The reservation in force at ``now``; an expired lease frees the VCI."""
        if self._reservation is not None and now >= self._reservation.expires_at:
            self._reservation = None
        return self._reservation

    def info(self, now: float) -> dict[str, Any]:
        """What the VCI reports: firmware, VIN, battery volts, owner and lease left."""
        held = self.holder(now)
        return {
            "firmware": self.firmware,
            "vin": self._vin(),
            "battery_volts": self._battery(),
            "owner": held.owner if held else None,
            "lease_expires_in": held.expires_in(now) if held else None,
        }

    def reserve(self, owner: str, lease_s: float, now: float) -> Reservation:
        """Reserve the VCI for ``owner``, or renew its lease.

        Args:
            owner: the tester's name, 1 to 64 printable characters.
            lease_s: how long the reservation holds unless renewed, in seconds.
            now: the current time of the VCI's clock.

        Returns:
            The reservation, expiring at ``now + lease_s``.

        Raises:
            ConfigError: the owner or the lease is not acceptable.
            VciBusy: another owner's lease is still running.
        """
        _check_owner(owner)
        if (
            isinstance(lease_s, bool)
            or not isinstance(lease_s, int | float)
            or not math.isfinite(lease_s)
            or not 0 < lease_s <= MAX_LEASE_S
        ):
            raise ConfigError(
                f"VCI lease must be more than 0 and at most {MAX_LEASE_S:g} seconds, "
                f"got {lease_s!r}"
            )
        held = self.holder(now)
        if held is not None and held.owner != owner:
            left = held.expires_in(now)
            raise VciBusy(
                f"the VCI is reserved by {held.owner!r} for {left:.1f} more seconds; "
                "wait for its release or ask that workstation to release it",
                owner=held.owner,
                expires_in=left,
            )
        self._reservation = Reservation(
            owner=owner, lease_s=float(lease_s), expires_at=now + float(lease_s)
        )
        return self._reservation

    def release(self, owner: str, now: float) -> bool:
        """Give the VCI back.

        Args:
            owner: who releases it; only the holder may.
            now: the current time of the VCI's clock.

        Returns:
            True if ``owner`` held it; False if nobody held it (its lease may have run out),
            which is not an error.

        Raises:
            ConfigError: the owner name is not acceptable.
            VciBusy: another owner holds it.
        """
        _check_owner(owner)
        held = self.holder(now)
        if held is None:
            return False
        if held.owner != owner:
            left = held.expires_in(now)
            raise VciBusy(
                f"only {held.owner!r} can release the VCI (reserved for {left:.1f} more "
                f"seconds), not {owner!r}",
                owner=held.owner,
                expires_in=left,
            )
        self._reservation = None
        return True
