"""The vehicle-wide steps around a plan's ECU actions, and the critical path's wording."""

from __future__ import annotations

from collections.abc import Sequence

from ecuworks.plan.model import Step
from ecuworks.plan.schedule import EcuWork, Timeline
from ecuworks.wire.ilevel import ILevel

__all__ = ["critical_path", "steps_for"]

_PREPARE = (
    (
        "energy-mode-flash",
        "switch the vehicle to flash mode (routine 0F0C) so no ECU sleeps or saves energy "
        "while it is programmed",
    ),
    (
        "dtc-setting-off",
        "stop every ECU storing faults (85 02): the others would log the silent ones",
    ),
    (
        "communication-off",
        "stop normal bus traffic (28) so the transfers have the buses to themselves",
    ),
)


def steps_for(has_actions: bool, target: ILevel, current: ILevel) -> tuple[Step, ...]:
    """The steps of a plan: all of them around ECU actions; without actions only the
    I-level record (when it changes) and the final check."""
    changes = target != current
    ilevel_reason = (
        f"record I-level {target} (was {current}) in the gateway's I-level triple"
        if changes
        else f"record I-level {target} again after programming"
    )
    finish = [
        ("communication-on", "resume normal bus traffic (28 00)"),
        ("dtc-setting-on", "let the ECUs store faults again (85 01)"),
        ("energy-mode-normal", "switch the vehicle back to its normal energy mode"),
        ("write-ilevel", ilevel_reason),
        ("write-vo", "write the vehicle order back so the gateway and its backup agree"),
        ("clear-dtcs", "clear the faults logged while ECUs were silent or rebooting"),
        ("read-dtcs", "read the fault memory: what remains is real and is reported"),
        ("final-check", "identify again: every SVK must equal the target SVT"),
    ]
    if not has_actions:
        no_work = [("final-check", "identify again: the SVT already equals the target")]
        if changes:
            no_work.insert(0, ("write-ilevel", ilevel_reason))
        return tuple(Step(name=n, phase="finish", reason=r) for n, r in no_work)
    return (
        *(Step(name=n, phase="prepare", reason=r) for n, r in _PREPARE),
        *(Step(name=n, phase="finish", reason=r) for n, r in finish),
    )


def critical_path(works: Sequence[EcuWork], timeline: Timeline, gateway: int) -> tuple[str, ...]:
    """What the estimate waits for, first to last: the gateway, then the last ECU to end
    (and, if sharing its bus slowed it, which bus)."""
    if not timeline.slots:
        return ()
    by_address = {w.address: w for w in works}
    path: list[str] = []
    if gateway in timeline.slots:
        start, end = timeline.slots[gateway]
        path.append(f"{by_address[gateway].label} {end - start:.1f} s")
    others = {a: s for a, s in timeline.slots.items() if a != gateway}
    if others:
        last = max(others, key=lambda a: (others[a][1], -a))
        start, end = others[last]
        work = by_address[last]
        line = f"{work.label} {end - start:.1f} s"
        if end - start > work.alone_s * 1.05:
            sharing = sum(1 for w in works if w.bus.name == work.bus.name and w.address != gateway)
            line += f" (alone {work.alone_s:.1f} s; {work.bus.name} shared by {sharing} ECUs)"
        path.append(line)
    return tuple(path)
