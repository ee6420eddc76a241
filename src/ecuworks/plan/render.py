"""A measures plan as a technician reads it: one table of actions, then a short summary."""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from ecuworks.plan.model import Plan

__all__ = ["plan_view", "render_plan", "summary_lines"]


def _unit_cell(unit: str | None, replaces: str | None) -> str:
    if unit is None:
        return "-"
    if replaces is None or replaces == unit:
        return unit
    if replaces.rsplit("-", 1)[0] == unit.rsplit("-", 1)[0]:  # same unit, new version
        return f"{replaces} → {unit.rsplit('-', 1)[1]}"
    return f"{replaces} → {unit}"


def plan_view(plan: Plan) -> RenderableType:
    """The plan's table (ECU, bus, category, unit, seconds, start-end) and its summary."""
    slots = {s.ecu: s for s in plan.schedule}
    table = Table(title=f"{plan.vin}: {plan.actual_ilevel} → {plan.target_ilevel}")
    for name, justify in (
        ("ECU", "left"),
        ("bus", "left"),
        ("category", "left"),
        ("unit", "left"),
        ("est. s", "right"),
        ("start-end s", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for address in plan.ecus:
        slot = slots.get(address)
        for i, action in enumerate(plan.actions_of(address)):
            first = i == 0
            table.add_row(
                f"{action.ecu_name} (0x{address:02X})" if first else "",
                slot.bus if first and slot else "",
                str(action.category),
                _unit_cell(action.unit, action.replaces),
                f"{action.seconds:.1f}",
                f"{slot.start_s:.1f}-{slot.end_s:.1f}" if first and slot else "",
            )
    lines = [Text(line) for line in summary_lines(plan)]
    return Group(table, *lines)


def summary_lines(plan: Plan) -> list[str]:
    """Counts, bytes, estimate against the bound, critical path, unknown and filtered."""
    ecus = len({a.ecu for a in plan.actions})
    lines = [
        f"actions   {len(plan.actions)} on {ecus} ECU(s), {plan.flash_bytes / 1e6:.2f} MB to flash",
    ]
    if plan.lower_bound_s > 0:
        ratio = plan.estimate_s / plan.lower_bound_s
        lines.append(
            f"estimate  {_duration(plan.estimate_s)} (lower bound {_duration(plan.lower_bound_s)}, "
            f"x{ratio:.2f})"
        )
    else:
        lines.append(f"estimate  {_duration(plan.estimate_s)}")
    if plan.critical_path:
        lines.append("critical  " + " → ".join(plan.critical_path))
    lines.append("steps     " + ", ".join(s.name for s in plan.steps))
    lines.extend(f"unknown   0x{u.ecu:02X}: {u.why}" for u in plan.unknown)
    lines.extend(f"filtered  {a.key}: {a.reason}" for a in plan.filtered)
    if not plan.actions:
        lines.append(f"nothing to program: the vehicle is at {plan.target_ilevel}'s target SVT")
    return lines


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def render_plan(plan: Plan, console: Console | None = None) -> None:
    """Print :func:`plan_view` (on standard output unless ``console`` is given)."""
    (console or Console(markup=False)).print(plan_view(plan), highlight=False)
