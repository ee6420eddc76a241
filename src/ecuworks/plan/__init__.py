"""The measures plan (TAL): what to flash, code and write, in which order, and how long.

:func:`build_plan` computes a :class:`Plan` from an identification and verified P-Data;
:class:`PlanFilter` narrows it; :func:`render_plan` shows it to a technician.
"""

from ecuworks.plan.build import build_plan
from ecuworks.plan.filter import FilterRule, PlanFilter, Verdict
from ecuworks.plan.model import (
    CATEGORY_ORDER,
    SCHEMA,
    Action,
    Category,
    EcuSlot,
    Plan,
    Step,
    UnknownEcu,
)

__all__ = [
    "CATEGORY_ORDER",
    "SCHEMA",
    "Action",
    "Category",
    "EcuSlot",
    "FilterRule",
    "Plan",
    "PlanFilter",
    "Step",
    "UnknownEcu",
    "Verdict",
    "build_plan",
]
