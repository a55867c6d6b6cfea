"""The catalogue in the log: a county admin publishes a whole version (rules, caps, weights, an
effective month) as one ``CatalogueVersionPublished`` on the ``catalogue`` stream.

What a replay scores then depends on the history, not on a file: the seed file
(``data/rules.json``) only becomes the first events of an empty log. A version takes effect from
the next month at the earliest, so no item already decided is ever scored differently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from services.declarations.domain.catalogue import CatalogueError, CatalogueVersion, Rule, RuleCatalogue
from services.declarations.domain.state import Catalogue, month_of
from shared.errors import Rejected
from shared.events.declarations import CatalogueVersionPublished, RuleDefinition
from shared.vocabulary import CATEGORIES, DIMENSIONS, ENTRY_STAFF, ROLES

if TYPE_CHECKING:
    from services.declarations.domain.commands import PublishCatalogue

EVERYONE = ("declarant", "recorder", "supervisor", "site")


def rule_of(d: RuleDefinition, version: int) -> Rule:
    return Rule(code=d.code, dimension=d.dimension, title=d.title, categories=tuple(d.categories),
                points_per_unit=d.points_per_unit, unit=d.unit, monthly_cap=d.monthly_cap,
                evidence_required=d.evidence_required, recorded_by=tuple(d.recorded_by), weight=d.weight,
                max_quantity=d.max_quantity, version=version)


def catalogue_of(published: Iterable[CatalogueVersionPublished]) -> RuleCatalogue:
    """The versions in force by effective month (a later version for the same month wins)."""
    ordered = sorted(published, key=lambda v: (v.effective_month, v.version))
    return RuleCatalogue(tuple(CatalogueVersion(v.version, v.effective_month,
                                                {r.code: rule_of(r, v.version) for r in v.rules})
                               for v in ordered))


def definitions_from_seed(data: Mapping[str, Any]) -> list[tuple[int, str, tuple[RuleDefinition, ...]]]:
    """The seed file's versions as (version, effective month, rules), for an empty log."""
    roles = data.get("roles", {"everyone": list(EVERYONE), "staff": list(ENTRY_STAFF)})
    out = []
    for raw in sorted(data["versions"], key=lambda v: int(v["version"])):
        rules = []
        for r in raw["rules"]:
            cats = list(CATEGORIES) if list(r["categories"]) == ["*"] else list(r["categories"])
            by = r.get("recorded_by", "everyone")
            rules.append(RuleDefinition(
                code=r["code"], dimension=r["dimension"], title=r["title"], categories=tuple(cats),
                points_per_unit=int(r["points_per_unit"]), unit=r["unit"], monthly_cap=r.get("monthly_cap"),
                evidence_required=bool(r.get("evidence_required", False)),
                recorded_by=tuple(roles[by] if isinstance(by, str) else by), weight=str(r.get("weight", 1)),
                max_quantity=int(r.get("max_quantity", 10))))
        out.append((int(raw["version"]), raw["effective_month"], tuple(rules)))
    return out


def seed_events(data: Mapping[str, Any], published_by: str = "seed") -> list[CatalogueVersionPublished]:
    """The seed's versions as the events an empty log starts with; a seed that contradicts itself
    raises ``CatalogueError`` (the service does not start on it)."""
    events = []
    for version, month, rules in definitions_from_seed(data):
        problems = problems_of(rules)
        if problems:
            raise CatalogueError(f"version {version}: " + "；".join(problems))
        events.append(CatalogueVersionPublished(version=version, effective_month=month, rules=rules,
                                                published_by=published_by))
    return events


def problems_of(rules: Iterable[RuleDefinition]) -> list[str]:
    """Everything that makes a version contradict itself, in zh-CN (empty = fine)."""
    out: list[str] = []
    seen: set[str] = set()
    for r in rules:
        where = f"项目 {r.code}"
        if r.code in seen:
            out.append(f"{where}：编号重复")
        seen.add(r.code)
        if r.dimension not in DIMENSIONS:
            out.append(f"{where}：不认识的维度 {r.dimension!r}")
        unknown = [c for c in r.categories if c not in CATEGORIES]
        if unknown:
            out.append(f"{where}：不认识的类别 {'、'.join(map(repr, unknown))}")
        if not r.categories:
            out.append(f"{where}：至少适用于一个类别")
        if len(set(r.categories)) != len(r.categories):
            out.append(f"{where}：类别重复")
        if not r.title.strip() or not r.unit.strip():
            out.append(f"{where}：名称和单位不能为空")
        if r.points_per_unit == 0:
            out.append(f"{where}：每单位分值不能为 0")
        if r.max_quantity < 1:
            out.append(f"{where}：每条最多数量至少为 1")
        if r.weight <= 0:
            out.append(f"{where}：权重必须大于 0")
        if r.monthly_cap is not None and r.monthly_cap < 1:
            out.append(f"{where}：月度上限至少为 1 分（不设上限请留空）")
        bad_roles = [x for x in r.recorded_by if x not in ROLES]
        if bad_roles or not r.recorded_by:
            out.append(f"{where}：录入角色有误 {'、'.join(bad_roles) or '（空）'}")
        if r.points_per_unit < 0 and not set(r.recorded_by) <= set(ENTRY_STAFF):
            out.append(f"{where}：减分项目只能由记录员或监督员录入")  # domain: deductions
    return out


def decide_publish(c: PublishCatalogue, published: Catalogue) -> list[CatalogueVersionPublished]:
    if c.actor.role != "county_admin":
        raise Rejected("发布积分目录需要县级管理员", status=403, code="forbidden_role")
    this_month = month_of(c.today)
    if c.effective_month <= this_month:
        raise Rejected(f"生效月份 {c.effective_month} 不能早于下个月（本月为 {this_month}）：已记下的积分不会被改算",
                       code="effective_month_past")
    if not c.rules:
        raise Rejected("目录中至少要有一个积分项目", code="catalogue_empty")
    problems = problems_of(c.rules)
    if problems:
        raise Rejected(f"目录有 {len(problems)} 处错误，未发布：" + "；".join(problems), code="catalogue_invalid",
                       problems=problems)
    version = max((v.version for v in published.published), default=0) + 1
    return [CatalogueVersionPublished(version=version, effective_month=c.effective_month, rules=c.rules,
                                      published_by=c.actor.sub, note=c.note)]
