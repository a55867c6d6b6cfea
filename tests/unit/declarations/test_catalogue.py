"""The default catalogue and scoring: every dimension and category covered, caps that fit the seed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.declarations.context import load_catalogue
from services.declarations.domain.catalogue import (
    CATEGORIES,
    DIMENSIONS,
    CatalogueError,
    Rule,
    catalogue_from_data,
)

pytestmark = pytest.mark.unit


def test_given_the_default_catalogue_then_every_dimension_and_category_has_rules() -> None:
    rules = load_catalogue().rules_for("2026-11")
    assert {r.dimension for r in rules} == set(DIMENSIONS)
    for category in CATEGORIES:
        assert any(r.applies_to(category) and not r.is_deduction for r in rules), category
    assert all(r.title for r in rules)


def test_given_the_default_catalogue_then_deductions_are_staff_only_and_need_evidence() -> None:
    deductions = [r for r in load_catalogue().rules_for("2026-11") if r.is_deduction]
    assert len(deductions) >= 3
    assert all(set(r.recorded_by) == {"recorder", "supervisor"} and r.evidence_required for r in deductions)


def test_given_the_default_catalogue_then_employment_rules_weigh_more() -> None:
    rules = load_catalogue().rules_for("2026-11")
    employment = [r for r in rules if r.dimension in ("livelihood_employment", "training_employment")]
    assert employment and all(r.weight > 1 for r in employment)
    assert all(r.weight == 1 for r in rules if r.dimension == "community_building")


def test_given_xu_kepin_a_building_head_then_the_caps_allow_180_points_in_one_month() -> None:
    """seed: 楼栋长徐科品 宣讲搬迁政策、帮助群众搬家具、参与楼栋环境卫生监督，1个月积分180分."""
    c = load_catalogue()
    caps = [c.rule(code, "2026-11") for code in ("POLICY_TALK", "HELP_MOVE", "HYGIENE_SUPERVISION")]
    assert all(r is not None and r.applies_to("building_head") for r in caps)
    assert sum(r.monthly_cap or 0 for r in caps if r) >= 180


def test_given_a_weighted_rule_then_points_are_units_times_points_times_weight_rounded_half_up() -> None:
    rule = Rule("X", "livelihood_employment", "务工", ("employed",), 3, "天", None, weight=Decimal("1.5"))
    assert rule.score(1) == 5  # 4.5 -> 5
    assert rule.score(2) == 9
    deduction = Rule("Y", "law_abiding", "违规", ("resident",), -3, "次", None, weight=Decimal("1.5"),
                     recorded_by=("recorder",))
    assert deduction.score(1) == -5  # away from zero


def versions(*entries: tuple[int, str, int]) -> dict[str, object]:
    return {"versions": [
        {"version": v, "effective_month": month, "rules": [
            {"code": "TALK", "dimension": "political_quality", "title": "宣讲", "categories": ["*"],
             "points_per_unit": points, "unit": "次", "monthly_cap": 100}]}
        for v, month, points in entries]}


def test_given_two_versions_then_each_month_uses_the_version_in_force() -> None:
    c = catalogue_from_data(versions((2, "2027-01", 8), (1, "2026-01", 10)))
    assert c.rule("TALK", "2025-12") is None
    r2026 = c.rule("TALK", "2026-12")
    r2027 = c.rule("TALK", "2027-03")
    assert r2026 is not None and r2027 is not None
    assert (r2026.version, r2026.points_per_unit) == (1, 10)
    assert (r2027.version, r2027.points_per_unit) == (2, 8)


def test_given_a_deduction_any_declarant_may_record_then_the_catalogue_is_refused() -> None:
    data = {"versions": [{"version": 1, "effective_month": "2026-01", "rules": [
        {"code": "BAD", "dimension": "law_abiding", "title": "违规", "categories": ["resident"],
         "points_per_unit": -5, "unit": "次", "monthly_cap": None, "recorded_by": ["declarant"]}]}]}
    with pytest.raises(CatalogueError):
        catalogue_from_data(data)


def test_given_an_unknown_dimension_or_category_then_the_catalogue_is_refused() -> None:
    for field, value in (("dimension", "luck"), ("categories", ["wizard"])):
        data = versions((1, "2026-01", 5))
        data["versions"][0]["rules"][0][field] = value  # type: ignore[index]
        with pytest.raises(CatalogueError):
            catalogue_from_data(data)
