"""Progress events of a programming session, for the terminal, the web UI and tests.

The runner calls one ``progress`` callback with a :class:`Progress` for every step; it must
return quickly (render, queue, count) and never raise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Kind", "Progress", "ProgressCallback", "ignore"]


class Kind(StrEnum):
    """What happened."""

    STEP = "step"  # a vehicle-wide step started or ended (``status``)
    ECU = "ecu"  # an ECU's job started or ended
    ACTION = "action"  # an action started, ended, or failed one attempt
    BYTES = "bytes"  # bytes of a unit transferred so far (``done`` of ``total``)
    POWER = "power"  # a voltage reading; ``status`` paused/resumed when the gate changes
    NOTE = "note"  # anything else worth a line


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """One event.

    Attributes:
        kind: what happened.
        key: the journal key of the action or step (``0x12/SwDeploy/SWFL-...``).
        ecu: diagnostic address, if the event is about one ECU.
        status: ``Started``, ``Success``, ``Failed``, ``Skipped``, ``paused``...
        done: bytes transferred (BYTES), or the attempt number (ACTION).
        total: bytes of the unit (BYTES).
        volts: the voltage (POWER).
        message: a line for a technician.
    """

    kind: Kind
    key: str = ""
    ecu: int | None = None
    status: str = ""
    done: int = 0
    total: int = 0
    volts: float | None = None
    message: str = ""


ProgressCallback = Callable[[Progress], None]


def ignore(_: Progress) -> None:
    """A progress callback that drops every event."""
