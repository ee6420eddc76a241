"""Pausing and aborting a running session by hand, at its safe points.

A technician (the web UI's buttons) may pause a session: no new ECU unit starts, the ones
being transferred finish, tester present keeps the ECUs in their sessions, and
:meth:`RunControl.resume` lets it go on; a pause holds where the power gate is awaited
(before an ECU's job, before each unit, before coding, before the finishing steps).

An abort stops at ECU boundaries only: every ECU job that has begun runs to its end (all
its units, its coding), no new one starts, and the session ends as failed with the note
``aborted by <user>`` so that ``ecuworks resume`` continues it later. No ECU is left in its
bootloader by an abort, and a flash is never cut in the middle (DOMAIN.md).
"""

from __future__ import annotations

import asyncio

from ecuworks.errors import ProgrammingFailed
from ecuworks.execute.progress import Kind, Progress, ProgressCallback, ignore

__all__ = ["Aborted", "RunControl"]


class Aborted(ProgrammingFailed):
    """The session was aborted by hand at a safe point; ``ecuworks resume`` continues it."""


class RunControl:
    """Pause, resume and abort one session; safe to call from the event loop's thread."""

    def __init__(self) -> None:
        self._go = asyncio.Event()
        self._go.set()
        self.paused_by: str | None = None
        self.aborted_by: str | None = None
        self._progress: ProgressCallback = ignore

    @property
    def paused(self) -> bool:
        """True while paused (and not aborted)."""
        return self.paused_by is not None and self.aborted_by is None

    def bind(self, progress: ProgressCallback) -> None:
        """Say pauses and aborts through ``progress`` (the runner binds its callback)."""
        self._progress = progress
        if self.aborted_by is not None:
            self._say("aborted", self.aborted_by)
        elif self.paused_by is not None:
            self._say("paused", self.paused_by)

    def pause(self, by: str) -> None:
        """Hold back every new unit until :meth:`resume`; running transfers finish."""
        if self.aborted_by is not None or self.paused_by is not None:
            return
        self.paused_by = by
        self._go.clear()
        self._say("paused", by)

    def resume(self, by: str) -> None:
        """Let new units start again."""
        if self.aborted_by is not None or self.paused_by is None:
            return
        self.paused_by = None
        self._go.set()
        self._say("resumed", by)

    def abort(self, by: str) -> None:
        """Stop at the next safe point; the session ends as failed, resumable."""
        if self.aborted_by is not None:
            return
        self.aborted_by = by
        self._go.set()
        self._say("aborted", by)

    def check(self) -> None:
        """Raise :class:`Aborted` if the session was aborted."""
        if self.aborted_by is not None:
            raise Aborted(f"aborted by {self.aborted_by}", action="abort")

    async def wait_unpaused(self) -> None:
        """Return when not paused; an abort lets it go too (the ECU's job finishes)."""
        await self._go.wait()

    async def wait(self) -> None:
        """Return when a new ECU job may start.

        Raises:
            Aborted: the session was aborted.
        """
        self.check()
        await self._go.wait()
        self.check()

    def _say(self, status: str, by: str) -> None:
        messages = {
            "paused": f"paused by {by}: running transfers finish, no new unit starts",
            "resumed": f"resumed by {by}",
            "aborted": f"aborted by {by}: running transfers finish, then the session stops "
            "('ecuworks resume' continues it)",
        }
        self._progress(Progress(kind=Kind.NOTE, status=status, message=messages[status]))
