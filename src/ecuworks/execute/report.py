"""What a programming session did, for the technician and the vehicle history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["SCHEMA", "EcuReport", "Report"]

SCHEMA: Final = 1


@dataclass(kw_only=True)
class EcuReport:
    """One ECU's outcome.

    Attributes:
        ecu: diagnostic address.
        name: short name.
        status: ``done``, ``failed``, ``not started`` or ``unchanged`` (no actions).
        seconds: wall time of its job.
        actions: how many actions it had.
        svk_matches: the SVK read back equals the target (None before the final check).
        dtcs: DTCs stored after the clear (None if not read).
    """

    ecu: int
    name: str
    status: str = "not started"
    seconds: float = 0.0
    actions: int = 0
    svk_matches: bool | None = None
    dtcs: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "ecu": self.ecu,
            "name": self.name,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "actions": self.actions,
            "svk_matches": self.svk_matches,
            "dtcs": self.dtcs,
        }


@dataclass(kw_only=True)
class Report:
    """The session's outcome.

    Attributes:
        vin: the vehicle.
        session: the journal session id.
        target_ilevel: the I-level programmed to.
        outcome: ``done`` or ``failed``.
        wall_s: wall time from the first write to the final check.
        estimate_s: the plan's estimate.
        lower_bound_s: the plan's lower bound.
        bytes_sent: image bytes transferred.
        ecus: per ECU.
        final_check: every planned ECU's SVK read back equals the target.
        mismatches: what differs from the target, one line each.
        min_volts: the lowest battery voltage read while programming.
        pauses: how many times low voltage paused the session.
        notes: anything else a technician should read.
        not_cleared: ECUs that did not confirm clearing their fault memory (a ``diag``
            session), address -> why.
        svt_after: the SVT the final check read (None when it did not run), for the
            vehicle history.
    """

    vin: str
    session: int
    target_ilevel: str
    outcome: str = "failed"
    wall_s: float = 0.0
    estimate_s: float = 0.0
    lower_bound_s: float = 0.0
    bytes_sent: int = 0
    ecus: list[EcuReport] = field(default_factory=list)
    final_check: bool = False
    mismatches: list[str] = field(default_factory=list)
    min_volts: float | None = None
    pauses: int = 0
    notes: list[str] = field(default_factory=list)
    not_cleared: dict[int, str] = field(default_factory=dict)
    svt_after: dict[int, list[str]] | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object of ``apply``, ``program`` and ``resume``."""
        return {
            "schema": SCHEMA,
            "vin": self.vin,
            "session": self.session,
            "target_ilevel": self.target_ilevel,
            "outcome": self.outcome,
            "wall_s": round(self.wall_s, 3),
            "estimate_s": round(self.estimate_s, 3),
            "lower_bound_s": round(self.lower_bound_s, 3),
            "bytes_sent": self.bytes_sent,
            "final_check": self.final_check,
            "mismatches": list(self.mismatches),
            "min_volts": self.min_volts,
            "pauses": self.pauses,
            "ecus": [e.to_json() for e in self.ecus],
            "notes": list(self.notes),
            "not_cleared": {str(a): why for a, why in sorted(self.not_cleared.items())},
        }
