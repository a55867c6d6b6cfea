"""The rule catalogue (积分项目条目化): itemised rules, versioned with an effective month.

A replay scores each item with the version in force in the month it happened, so a new version
never changes history. Employment and income rules carry a weight above 1 (seed: 加大在积分管理
体系中的权重).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from shared.vocabulary import CATEGORIES, DIMENSIONS, ENTRY_STAFF

__all__ = ["CATEGORIES", "DIMENSIONS", "CatalogueVersion", "Rule", "RuleCatalogue", "catalogue_from_data"]

STAFF_ROLES = ENTRY_STAFF  # deductions: recorders and supervisors only


class CatalogueError(ValueError):
    """The catalogue data is inconsistent (a county's edit went wrong)."""


@dataclass(frozen=True)
class Rule:
    code: str
    dimension: str
    title: str
    categories: tuple[str, ...]
    points_per_unit: int  # positive = 加分, negative = 减分
    unit: str
    monthly_cap: int | None  # cap on |points| per subject per rule per month; None = no cap
    evidence_required: bool = False
    recorded_by: tuple[str, ...] = ("declarant", "recorder", "supervisor", "site")
    weight: Decimal = Decimal(1)
    max_quantity: int = 10  # more units than this in one item is absurd
    version: int = 1

    @property
    def is_deduction(self) -> bool:
        return self.points_per_unit < 0

    def applies_to(self, category: str) -> bool:
        return category in self.categories

    def score(self, quantity: int) -> int:
        """points = points_per_unit × quantity × weight, rounded half away from zero."""
        exact = Decimal(self.points_per_unit) * quantity * self.weight
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code, "title": self.title, "dimension": self.dimension,
            "dimension_title": DIMENSIONS[self.dimension], "categories": list(self.categories),
            "points_per_unit": self.points_per_unit, "unit": self.unit, "monthly_cap": self.monthly_cap,
            "evidence_required": self.evidence_required, "recorded_by": list(self.recorded_by),
            "weight": float(self.weight), "max_quantity": self.max_quantity, "version": self.version,
            "deduction": self.is_deduction,
        }


@dataclass(frozen=True)
class CatalogueVersion:
    version: int
    effective_month: str  # YYYY-MM
    rules: Mapping[str, Rule] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleCatalogue:
    versions: tuple[CatalogueVersion, ...]  # ascending by effective month

    def in_force(self, month: str) -> CatalogueVersion | None:
        current = None
        for v in self.versions:
            if v.effective_month <= month:
                current = v
        return current

    def rule(self, code: str, month: str) -> Rule | None:
        version = self.in_force(month)
        return None if version is None else version.rules.get(code)

    def rules_for(self, month: str, category: str | None = None) -> list[Rule]:
        version = self.in_force(month)
        if version is None:
            return []
        return [r for r in version.rules.values() if category is None or r.applies_to(category)]


def catalogue_from_data(data: Mapping[str, Any]) -> RuleCatalogue:
    """A catalogue from seed data (``data/rules.json``'s shape), checked as a published version is."""
    from services.declarations.domain.catalogue_log import catalogue_of, seed_events

    return catalogue_of(seed_events(data))
