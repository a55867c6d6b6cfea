"""The rule catalogue (积分项目条目化): itemised rules, versioned with an effective month.

A replay scores each item with the version in force in the month it happened, so a new version
never changes history. Employment and income rules carry a weight above 1 (seed: 加大在积分管理
体系中的权重).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def _rule(raw: Mapping[str, Any], version: int, roles: Mapping[str, Sequence[str]]) -> Rule:
    cats = tuple(CATEGORIES) if list(raw["categories"]) == ["*"] else tuple(raw["categories"])
    recorded_by = raw.get("recorded_by", "everyone")
    rule = Rule(
        code=raw["code"], dimension=raw["dimension"], title=raw["title"], categories=cats,
        points_per_unit=int(raw["points_per_unit"]), unit=raw["unit"], monthly_cap=raw.get("monthly_cap"),
        evidence_required=bool(raw.get("evidence_required", False)),
        recorded_by=tuple(roles[recorded_by] if isinstance(recorded_by, str) else recorded_by),
        weight=Decimal(str(raw.get("weight", 1))), max_quantity=int(raw.get("max_quantity", 10)), version=version,
    )
    problems = [c for c in rule.categories if c not in CATEGORIES]
    if rule.dimension not in DIMENSIONS:
        problems.append(f"dimension {rule.dimension}")
    if rule.points_per_unit == 0 or rule.max_quantity < 1 or rule.weight <= 0:
        problems.append("points_per_unit, max_quantity and weight must be non-zero and positive where required")
    if rule.is_deduction and not set(rule.recorded_by) <= set(STAFF_ROLES):
        problems.append("deductions may be recorded by recorders and supervisors only")
    if problems:
        raise CatalogueError(f"rule {rule.code} v{version}: {problems}")
    return rule


def catalogue_from_data(data: Mapping[str, Any]) -> RuleCatalogue:
    roles = data.get("roles", {"everyone": ["declarant", "recorder", "supervisor", "site"], "staff": STAFF_ROLES})
    versions = []
    for raw in sorted(data["versions"], key=lambda v: v["effective_month"]):
        rules = {r["code"]: _rule(r, int(raw["version"]), roles) for r in raw["rules"]}
        if len(rules) != len(raw["rules"]):
            raise CatalogueError(f"version {raw['version']}: duplicate rule codes")
        versions.append(CatalogueVersion(int(raw["version"]), raw["effective_month"], rules))
    return RuleCatalogue(tuple(versions))
