"""Simulated time, and the sharing of a bus by its ECUs.

Every duration in the simulator is in *simulated* seconds (docs/adr/0003, "Time").
:class:`Clock` maps them to real time with a time scale; it is the only thing here that
reads a clock or sleeps. :class:`BusScheduler` makes the ECUs of one bus share it. The
pure bus arithmetic -- how long one message occupies a bus (classic CAN, CAN FD, Ethernet,
FlexRay) -- lives in :mod:`ecuworks.profiles.bus_timing`, where the measures plan uses it
too; it is re-exported here.

The reference figures of DOMAIN.md ("Times and limits") come out of it; the doc examples
below are those figures, and the tests check them:

>>> round(4093 / isotp_transfer_seconds(4095, bitrate=500_000, stuffing="none") / 1e3)
31
>>> round(4093 / isotp_transfer_seconds(4095, bitrate=500_000, stuffing="worst") / 1e3)
26
>>> round(4093 / isotp_transfer_seconds(
...     4095, bitrate=500_000, stmin_s=0.001, stuffing="none") / 1e3, 1)
5.7
>>> round(4093 / isotp_transfer_seconds(
...     4095, bitrate=500_000, frame_data=64, fd_data_bitrate=2_000_000, stuffing="none") / 1e3)
186
>>> round(1e7 / ethernet_transfer_seconds(10_000_000, 100_000_000) / 1e6, 1)
11.9
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Final

from ecuworks.errors import ConfigError
from ecuworks.profiles.bus_timing import (
    CANFD_LENGTHS,
    FLEXRAY_DIAG_SHARE,
    Addressing,
    Stuffing,
    can_frame_bits,
    can_frame_seconds,
    canfd_frame_seconds,
    canfd_length,
    ethernet_transfer_seconds,
    flexray_transfer_seconds,
    isotp_transfer_seconds,
    transfer_seconds,
)

__all__ = [
    "CANFD_LENGTHS",
    "FLEXRAY_DIAG_SHARE",
    "Addressing",
    "BusScheduler",
    "Clock",
    "Stuffing",
    "can_frame_bits",
    "can_frame_seconds",
    "canfd_frame_seconds",
    "canfd_length",
    "ethernet_transfer_seconds",
    "flexray_transfer_seconds",
    "isotp_transfer_seconds",
    "transfer_seconds",
]

# --- simulated time ---------------------------------------------------------------------


MIN_REAL_SLEEP: Final = 0.001
"""Shorter waits only yield (see :meth:`Clock.sleep_until`)."""


class Clock:
    """Simulated seconds, running ``time_scale`` times as fast as real time.

    ``Clock(10.0)`` makes a 60 s flash take 6 real seconds. The time source is the running
    event loop's ``time()`` when the clock is made inside one (so :meth:`sleep` and
    :meth:`now` agree with the loop's timers), else :func:`time.monotonic`.

    Args:
        time_scale: simulated seconds per real second, > 0.
        source: real-time source in seconds, for tests; default as above.

    Raises:
        ConfigError: ``time_scale`` is not a positive finite number.
    """

    def __init__(
        self, time_scale: float = 1.0, *, source: Callable[[], float] | None = None
    ) -> None:
        if not (math.isfinite(time_scale) and time_scale > 0):
            raise ConfigError(
                f"time scale {time_scale!r} is not a positive number; use e.g. 1 for real "
                f"time or 10 to run ten times as fast"
            )
        self.time_scale = float(time_scale)
        if source is None:
            try:
                source = asyncio.get_running_loop().time
            except RuntimeError:
                source = time.monotonic
        self._source = source
        self._start = source()

    def now(self) -> float:
        """Simulated seconds since the clock was made."""
        return (self._source() - self._start) * self.time_scale

    def to_real(self, sim_s: float) -> float:
        """Real seconds that ``sim_s`` simulated seconds take."""
        return sim_s / self.time_scale

    def to_sim(self, real_s: float) -> float:
        """Simulated seconds that pass in ``real_s`` real seconds."""
        return real_s * self.time_scale

    async def sleep(self, sim_s: float) -> None:
        """Sleep ``sim_s`` simulated seconds (nothing for zero or less)."""
        await asyncio.sleep(max(0.0, sim_s) / self.time_scale)

    async def sleep_until(self, sim_t: float) -> None:
        """Sleep until :meth:`now` reaches ``sim_t`` (e.g. a :meth:`BusScheduler.reserve`).

        Waits shorter than :data:`MIN_REAL_SLEEP` only yield: the event loop's timers are
        rounded up to whole milliseconds (epoll), so a 0.2 ms CAN frame would take 1 ms;
        longer ones aim half a millisecond early, so the rounding errs both ways.
        Callers aim at absolute times booked on a :class:`BusScheduler`, so time skipped
        here is slept with the next wait that is long enough: the average rate holds.
        """
        real = (sim_t - self.now()) / self.time_scale
        # Aim half a tick early: the rounding up then lands on average on time.
        await asyncio.sleep(real - MIN_REAL_SLEEP / 2 if real >= MIN_REAL_SLEEP else 0)


# --- sharing a bus ------------------------------------------------------------------------


class BusScheduler:
    """One bus as a resource its ECUs share, first come first served. Sans-I/O.

    :meth:`reserve` books a transfer and says when it completes; the caller sleeps until
    then with :meth:`Clock.sleep_until`. Why FIFO whole-message booking is faithful
    enough: on a real CAN bus the frames of concurrent ISO-TP transfers interleave by
    arbitration, so each transfer *finishes* later than it would alone, but the bus is
    never idle while any frame is pending. The total bus time is the sum of every
    transfer's frame time either way, so the aggregate throughput and the time the last
    transfer ends are the same as with FIFO; only the order in which the individual
    transfers finish differs (FIFO finishes the first one earlier). Gaps a lone sender
    leaves (STmin, flow-control turnaround) could in reality carry other ECUs' frames;
    booking them as busy makes the model conservative when STmin is large.

    Exact under the intended use: callers pass the current simulated time as ``now``,
    which never goes backwards.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._busy_until = 0.0
        self._busy_seconds = 0.0
        self._transfers = 0

    @property
    def busy_until(self) -> float:
        """Simulated time at which the last booked transfer completes."""
        return self._busy_until

    @property
    def busy_seconds(self) -> float:
        """Total simulated seconds booked so far."""
        return self._busy_seconds

    @property
    def transfers(self) -> int:
        """How many transfers were booked."""
        return self._transfers

    def reserve(self, now: float, duration: float) -> float:
        """Book ``duration`` seconds of the bus, starting no earlier than ``now``.

        Returns:
            The simulated time the transfer completes: ``max(now, busy_until) + duration``.

        Raises:
            ValueError: a negative duration.
        """
        if duration < 0:
            raise ValueError(f"a transfer cannot take {duration} s")
        self._busy_until = max(now, self._busy_until) + duration
        self._busy_seconds += duration
        self._transfers += 1
        return self._busy_until

    def utilisation(self, now: float) -> float:
        """Share of the simulated time ``[0, now]`` the bus was busy, 0.0-1.0 (for reports)."""
        if now <= 0:
            return 0.0
        done = self._busy_seconds - max(0.0, self._busy_until - now)
        return min(1.0, max(0.0, done / now))
