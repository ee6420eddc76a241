"""The power gate: watches the battery while programming and holds new units back.

The policy (thresholds, hysteresis) is :class:`~ecuworks.execute.power.PowerPolicy`; this
is its I/O: the gateway's DID F1A2 read every ``poll_s`` seconds, and an event every ECU job
awaits before it starts a unit.
"""

from __future__ import annotations

import asyncio
import contextlib

from ecuworks.errors import LinkError, ParseError, ProgrammingFailed, UdsError
from ecuworks.execute.power import PowerPolicy
from ecuworks.execute.progress import Kind, Progress, ProgressCallback
from ecuworks.transport.base import Link
from ecuworks.uds.client import Timing, UdsClient
from ecuworks.wire.uds import Did, decode_battery_volts

__all__ = ["PowerGate"]


class PowerGate:
    """Watches the battery through the gateway and holds new units back while it is low."""

    def __init__(
        self,
        link: Link,
        gateway: int,
        policy: PowerPolicy,
        progress: ProgressCallback,
        *,
        poll_s: float,
        pause_limit_s: float,
    ) -> None:
        self.client = UdsClient(link, gateway, timing=Timing(p2=0.5))
        self.policy = policy
        self.progress = progress
        self.poll_s = poll_s
        self.pause_limit_s = pause_limit_s
        self.open = asyncio.Event()
        self.open.set()
        self.gateway_busy = False
        self.min_volts: float | None = None
        self.pauses = 0
        self.last: float | None = None

    async def read(self) -> float | None:
        """One reading of DID F1A2, or None when the gateway cannot answer now."""
        try:
            return decode_battery_volts(await self.client.read_did(Did.BATTERY_MV))
        except (UdsError, LinkError, ParseError):
            return None

    def judge(self, volts: float | None) -> None:
        """Open or close the gate on one reading."""
        if volts is None:
            return
        self.last = volts
        self.min_volts = volts if self.min_volts is None else min(self.min_volts, volts)
        verdict = self.policy.verdict(volts, paused=not self.open.is_set())
        if verdict == "ok" and not self.open.is_set():
            self.open.set()
            self.progress(
                Progress(
                    kind=Kind.POWER,
                    status="resumed",
                    volts=volts,
                    message=f"battery {volts:.2f} V: programming goes on",
                )
            )
        elif verdict in ("low", "high") and self.open.is_set():
            self.open.clear()
            self.pauses += 1
            limit = (
                f"below {self.policy.pause_below:.2f} V"
                if verdict == "low"
                else f"above {self.policy.limits.warn_high:.2f} V"
            )
            self.progress(
                Progress(
                    kind=Kind.POWER,
                    status="paused",
                    volts=volts,
                    message=f"battery {volts:.2f} V is {limit}: paused at the next safe "
                    f"point until it is back at {self.policy.min_start_volts:.2f} V "
                    "(check the charger; Ctrl-C aborts, 'ecuworks resume' continues)",
                )
            )
        else:
            self.progress(Progress(kind=Kind.POWER, volts=volts))

    async def settle(self, volts: float | None) -> float | None:
        """Before a resume: wait, as in a pause, until the battery is back at the start level.

        ECUs an interrupted session left in their programming session draw current until
        their S3 timer ends it, so the battery reads low for a while right after a crash
        even on a charger. A reading that is unknown, or beyond the type's limits, is not
        waited for. The gate closes and :meth:`watch` opens it as after a pause. Returns
        the last reading once the gate is open, or after ``pause_limit_s``; the caller's
        start check refuses what is still too low.
        """
        policy = self.policy
        if volts is None or volts >= policy.min_start_volts:
            return volts
        if not policy.limits.error_low <= volts <= policy.limits.error_high:
            return volts
        self.open.clear()
        self.last = volts
        self.progress(
            Progress(
                kind=Kind.POWER,
                status="paused",
                volts=volts,
                message=f"battery {volts:.2f} V is below the {policy.min_start_volts:.2f} V "
                f"needed to go on: waiting up to {self.pause_limit_s:g} s for it to recover "
                "(ECUs left in a programming session draw current until it ends; check the "
                "charger; Ctrl-C aborts)",
            )
        )
        watcher = asyncio.create_task(self.watch())
        try:
            await self.wait_open()
        except ProgrammingFailed:
            pass  # still low: the start check refuses, nothing was written
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        return self.last

    async def watch(self) -> None:
        """Read the battery every ``voltage_poll_s`` until cancelled."""
        while True:
            if not self.gateway_busy:
                self.judge(await self.read())
            await asyncio.sleep(self.poll_s)

    async def wait_open(self) -> None:
        """Return when a new unit may start.

        Raises:
            ProgrammingFailed: the voltage stayed low for ``pause_limit_s``.
        """
        if self.open.is_set():
            return
        try:
            async with asyncio.timeout(self.pause_limit_s):
                await self.open.wait()
        except TimeoutError:
            raise ProgrammingFailed(
                f"the battery stayed at {self.last or 0:.2f} V for "
                f"{self.pause_limit_s:g} s; programming stopped at a safe point. "
                "Connect a charger, then run 'ecuworks resume'",
                action="power",
            ) from None
