"""The plan filter: must / must-not / allowed, per TAL category and optionally per ECU.

The trade's tool lets a technician narrow a measures plan: never flash bootloaders on this
car (``must-not:BlFlash``), leave the head unit alone (``must-not:SwDeploy@0x63``), or
insist that the engine ECU is coded (``must:CdDeploy@0x12``). ``allowed`` is what every
category is without a rule. A rule naming an ECU beats one for the whole category; among
equally specific rules the later wins, as on a command line.

A *must* is a check, not a wish: the plan must contain such an action, else planning
fails with :class:`~ecuworks.errors.ConfigError` naming the rule, because a plan that
silently lacks what the technician required would be worse than none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Final

from ecuworks.errors import ConfigError
from ecuworks.plan.model import CATEGORY_ORDER, Action, Category

__all__ = ["FilterRule", "PlanFilter", "Verdict"]

_RULE: Final = re.compile(r"\s*([a-z-]+)\s*:\s*([A-Za-z]+)\s*(?:@\s*(\S+))?\s*")


class Verdict(StrEnum):
    """What a rule says about its actions."""

    MUST = "must"
    MUST_NOT = "must-not"
    ALLOWED = "allowed"


@dataclass(frozen=True, slots=True, kw_only=True)
class FilterRule:
    """One rule: a verdict on one category, for every ECU or for one.

    Attributes:
        verdict: must, must-not or allowed.
        category: the TAL category it is about.
        ecu: the ECU's diagnostic address, or None for every ECU.
    """

    verdict: Verdict
    category: Category
    ecu: int | None = None

    def __post_init__(self) -> None:
        if self.ecu is not None and not 0 <= self.ecu <= 0xFF:
            raise ConfigError(f"filter: ECU address {self.ecu:#x} is not one byte (0x00-0xFF)")

    @classmethod
    def parse(cls, text: str) -> FilterRule:
        """Parse the command line form ``VERDICT:CATEGORY[@ECU]``.

        ``must-not:BlFlash``, ``must-not:SwDeploy@0x63``, ``must:CdDeploy@18``; the
        category is case-insensitive.

        Raises:
            ConfigError: not of that form, or an unknown verdict, category or address.
        """
        match = _RULE.fullmatch(text)
        example = "e.g. must-not:BlFlash or must:CdDeploy@0x12"
        if match is None:
            raise ConfigError(f"filter {text!r}: expected VERDICT:CATEGORY[@ECU], {example}")
        verdict_text, category_text, ecu_text = match.groups()
        try:
            verdict = Verdict(verdict_text)
        except ValueError:
            raise ConfigError(
                f"filter {text!r}: verdict {verdict_text!r} is not one of "
                f"{', '.join(Verdict)}; {example}"
            ) from None
        by_name = {c.value.lower(): c for c in CATEGORY_ORDER}
        category = by_name.get(category_text.lower())
        if category is None:
            raise ConfigError(
                f"filter {text!r}: category {category_text!r} is not one of "
                f"{', '.join(CATEGORY_ORDER)}"
            )
        ecu = None
        if ecu_text is not None:
            try:
                ecu = int(ecu_text, 0)
            except ValueError:
                raise ConfigError(
                    f"filter {text!r}: {ecu_text!r} is no ECU address (write 0x12 or 18)"
                ) from None
        return cls(verdict=verdict, category=category, ecu=ecu)

    def __str__(self) -> str:
        where = "" if self.ecu is None else f"@0x{self.ecu:02X}"
        return f"{self.verdict}:{self.category}{where}"

    def covers(self, action: Action) -> bool:
        """Tell whether the rule is about ``action``."""
        return action.category == self.category and self.ecu in (None, action.ecu)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"verdict": str(self.verdict), "category": str(self.category), "ecu": self.ecu}

    @classmethod
    def from_json(cls, data: object, where: str) -> FilterRule:
        """Read the JSON form.

        Raises:
            ConfigError: a field missing or invalid, named.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: a JSON object is needed")
        ecu = data.get("ecu")
        if ecu is not None and (not isinstance(ecu, int) or isinstance(ecu, bool)):
            raise ConfigError(f"{where}.ecu: an address or null is needed")
        try:
            return cls(
                verdict=Verdict(str(data.get("verdict"))),
                category=Category(str(data.get("category"))),
                ecu=ecu,
            )
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanFilter:
    """The rules a plan is made with; no rules allows everything.

    Attributes:
        rules: in the order given.
    """

    rules: tuple[FilterRule, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))
        said: dict[tuple[Category, int | None], FilterRule] = {}
        for rule in self.rules:
            key = (rule.category, rule.ecu)
            other = said.get(key)
            clash = {rule.verdict, other.verdict if other else rule.verdict}
            if clash == {Verdict.MUST, Verdict.MUST_NOT}:
                raise ConfigError(f"filter: {other} and {rule} contradict each other")
            said[key] = rule

    @classmethod
    def parse(cls, texts: Iterable[str]) -> PlanFilter:
        """Read the command line's ``--filter`` values.

        Raises:
            ConfigError: a rule that does not parse, or two that contradict each other.
        """
        return cls(rules=tuple(FilterRule.parse(t) for t in texts))

    def rule_for(self, action: Action) -> FilterRule | None:
        """The rule that decides ``action``: the last ECU-specific one, else the last general."""
        chosen: FilterRule | None = None
        for rule in self.rules:
            if rule.covers(action) and (
                chosen is None or rule.ecu is not None or chosen.ecu is None
            ):
                chosen = rule
        return chosen

    def apply(
        self, actions: Iterable[Action], ecu_labels: Mapping[int, str] | None = None
    ) -> tuple[tuple[Action, ...], tuple[Action, ...]]:
        """Split ``actions`` into those kept and those a must-not rule drops.

        Dropped actions come back with their reason saying which rule dropped them.

        Raises:
            ConfigError: a *must* rule that no kept action satisfies (named, with the ECU).
        """
        kept: list[Action] = []
        dropped: list[Action] = []
        for action in actions:
            rule = self.rule_for(action)
            if rule is not None and rule.verdict is Verdict.MUST_NOT:
                reason = f"left out by filter '{rule}'; would have been: {action.reason}"
                dropped.append(replace(action, reason=reason))
            else:
                kept.append(action)
        labels = ecu_labels or {}
        for rule in self.rules:
            if rule.verdict is Verdict.MUST and not any(rule.covers(a) for a in kept):
                where = (
                    "any ECU"
                    if rule.ecu is None
                    else labels.get(rule.ecu, f"the ECU at 0x{rule.ecu:02X}")
                )
                raise ConfigError(
                    f"filter '{rule}': the plan has no {rule.category} action for {where}"
                    f"{_why_none(rule.category)}; drop the rule or choose another target"
                )
        return tuple(kept), tuple(dropped)

    def to_json(self) -> dict[str, Any]:
        """The JSON form stored in :attr:`Plan.filter`."""
        return {"rules": [r.to_json() for r in self.rules]}

    @classmethod
    def from_json(cls, data: object, where: str = "filter") -> PlanFilter:
        """Read the JSON form (an empty object is the empty filter).

        Raises:
            ConfigError: not a filter; the field is named.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: a JSON object is needed")
        rules = data.get("rules", [])
        if not isinstance(rules, list):
            raise ConfigError(f"{where}.rules: a list is needed")
        return cls(
            rules=tuple(FilterRule.from_json(r, f"{where}.rules[{i}]") for i, r in enumerate(rules))
        )


def _why_none(category: Category) -> str:
    """Why a category may be missing from every programming plan, for the message."""
    if category in (Category.ID_BACKUP, Category.ID_RESTORE, Category.HW_INSTALL):
        return " (only 'ecuworks replace' and 'ecuworks retrofit' plan it)"
    if category is Category.FSC_DEPLOY:
        return " (enabling codes are planned by 'ecuworks enable', retrofit and replace)"
    return ""
