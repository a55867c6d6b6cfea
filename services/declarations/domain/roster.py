"""The roster (花名册): communities, the four-level party organisation, grid cells and subjects.

Pure decisions: each takes the state it needs and returns events, or raises ``Rejected``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.declarations.domain.state import OrgUnit, Subject
from shared.errors import Rejected
from shared.events.declarations import (
    CommunityRegistered,
    OrgUnitAdded,
    SubjectCategoriesChanged,
    SubjectMovedOut,
    SubjectRegistered,
)
from shared.vocabulary import CATEGORIES

# seed: 联合党委-党总支-党支部-党小组, grid cells (楼栋、车间、志愿队伍) under a branch
UNIT_PARENTS: dict[str, tuple[str | None, ...]] = {
    "joint_committee": (None,),
    "general_branch": ("joint_committee",),
    "branch": ("general_branch",),
    "group": ("branch",),
    "building": ("branch", "group"),
    "workshop": ("branch", "group"),
    "volunteer_team": ("branch", "group"),
}
KINDS = ("person", "family", "organisation")
ORGANISATION_CATEGORIES = ("party_organization", "mass_organization")
GENDERS = ("female", "male")


@dataclass(frozen=True)
class SubjectSpec:
    """One subject to register (a row of an import, or an item of a registration request)."""

    subject_id: str
    kind: str
    name: str
    categories: tuple[str, ...]
    registered_on: dt.date
    gender: str | None = None
    family_id: str | None = None
    contact_id: str | None = None
    units: tuple[str, ...] = ()


def register_community(community_id: str, name: str, county: str, exists: bool) -> list[CommunityRegistered]:
    if exists:
        raise Rejected(f"社区 {community_id} 已经登记过", status=409, code="community_exists")
    return [CommunityRegistered(community_id=community_id, name=name, county=county)]


def add_org_unit(community_known: bool, units: Mapping[str, OrgUnit], community_id: str, unit_id: str,
                 kind: str, name: str, parent_id: str | None) -> list[OrgUnitAdded]:
    if not community_known:
        raise Rejected(f"没有登记社区 {community_id}", code="unknown_community")
    if unit_id in units:
        raise Rejected(f"组织或网格 {unit_id} 已存在", status=409, code="unit_exists")
    if kind not in UNIT_PARENTS:
        raise Rejected(f"不认识的组织类型 {kind}", code="unknown_unit_kind")
    parent = units.get(parent_id) if parent_id else None
    if parent_id and (parent is None or parent.community_id != community_id):
        raise Rejected(f"上级组织 {parent_id} 不在本社区", code="unknown_parent_unit")
    if (parent.kind if parent else None) not in UNIT_PARENTS[kind]:
        raise Rejected(f"{kind} 的上级不能是 {parent.kind if parent else '（无）'}", code="bad_unit_parent")
    return [OrgUnitAdded(community_id=community_id, unit_id=unit_id, kind=kind, name=name, parent_id=parent_id)]


def spec_problems(spec: SubjectSpec, *, community_id: str, taken: bool, units: Mapping[str, OrgUnit],
                  families: set[str], persons: set[str]) -> list[str]:
    """Everything wrong with one subject, in zh-CN (empty = fine). ``families``/``persons``: known ids."""
    out = []
    if not spec.subject_id or not spec.name:
        out.append("编号和姓名（名称）不能为空")
    if taken:
        out.append(f"编号 {spec.subject_id} 已被登记")
    if spec.kind not in KINDS:
        out.append(f"类型应为 person/family/organisation，而不是 {spec.kind!r}")
    out += _category_problems(spec.kind, spec.categories)
    if spec.kind == "person" and spec.gender not in GENDERS:
        out.append("个人须填写性别（female 或 male）")
    if spec.family_id and (spec.kind != "person" or spec.family_id not in families):
        out.append(f"家庭 {spec.family_id} 未登记（或本主体不是个人）")
    if spec.contact_id and (spec.kind != "family" or spec.contact_id not in persons):
        out.append(f"联系人 {spec.contact_id} 未登记（或本主体不是家庭）")
    for unit in spec.units:
        if unit not in units or units[unit].community_id != community_id:
            out.append(f"组织或网格 {unit} 不在本社区")
    return out


def _category_problems(kind: str, categories: Sequence[str]) -> list[str]:
    out = []
    if not categories:
        out.append("至少要有一个积分主体类别")
    for c in categories:
        if c not in CATEGORIES:
            out.append(f"不认识的类别 {c!r}")
    if len(set(categories)) != len(categories):
        out.append("类别重复")
    if kind == "family" and tuple(categories) != ("family",):
        out.append("家庭的类别只能是 family")
    if kind == "organisation" and not set(categories) <= set(ORGANISATION_CATEGORIES):
        out.append("组织的类别只能是 party_organization 或 mass_organization")
    if kind == "person" and set(categories) & {"family", *ORGANISATION_CATEGORIES}:
        out.append("个人不能属于家庭或组织类别")
    return out


def register_subjects(community_id: str, community_known: bool, specs: Sequence[SubjectSpec],
                      taken: set[str], units: Mapping[str, OrgUnit], families: set[str], persons: set[str],
                      rows: Sequence[int] = (), known_problems: Sequence[Sequence[str]] = (),
                      ) -> list[SubjectRegistered]:
    """All or nothing: any bad spec refuses the lot, with every problem per row (1-based, or the file's
    row numbers ``rows``; ``known_problems``: what reading the file already found, per spec)."""
    if not community_known:
        raise Rejected(f"没有登记社区 {community_id}", code="unknown_community")
    ids = [s.subject_id for s in specs]
    families = families | {s.subject_id for s in specs if s.kind == "family"}
    persons = persons | {s.subject_id for s in specs if s.kind == "person"}
    report = []
    for n, spec in enumerate(specs, start=1):
        problems = list(known_problems[n - 1]) if known_problems else []
        problems += spec_problems(spec, community_id=community_id, taken=spec.subject_id in taken,
                                 units=units, families=families, persons=persons)
        if ids.count(spec.subject_id) > 1:
            problems.append(f"编号 {spec.subject_id} 在本次导入中重复")
        if problems:
            report.append({"row": rows[n - 1] if rows else n, "subject_id": spec.subject_id, "problems": problems})
    if not specs:
        raise Rejected("没有要登记的主体", code="empty_roster")
    if report:
        raise Rejected(f"{len(report)} 行有误，全部未导入", code="roster_rows_refused", rows=report)
    return [SubjectRegistered(
        subject_id=s.subject_id, community_id=community_id, kind=s.kind, name=s.name, categories=s.categories,
        gender=s.gender, family_id=s.family_id, contact_id=s.contact_id, units=s.units,
        registered_on=s.registered_on) for s in specs]


def _active(subject: Subject | None, subject_id: str, on: dt.date) -> Subject:
    if subject is None:  # the subject is named in the path: an unknown one is not there (404)
        raise Rejected(f"没有登记积分主体 {subject_id}", status=404, code="unknown_subject")
    if subject.moved_out_on is not None and subject.moved_out_on <= on:
        raise Rejected(f"{subject.name} 已于 {subject.moved_out_on} 迁出", code="subject_inactive")
    return subject


def change_categories(subject: Subject | None, subject_id: str, categories: tuple[str, ...],
                      on: dt.date) -> list[SubjectCategoriesChanged]:
    s = _active(subject, subject_id, on)
    problems = _category_problems(s.kind, categories)
    if problems:
        raise Rejected("；".join(problems), code="bad_categories")
    return [SubjectCategoriesChanged(subject_id=s.subject_id, community_id=s.community_id,
                                     categories=categories, changed_on=on)]


def move_out(subject: Subject | None, subject_id: str, on: dt.date, reason: str) -> list[SubjectMovedOut]:
    s = _active(subject, subject_id, on)
    if on < s.registered_on:
        raise Rejected("迁出日期早于登记日期", code="bad_date")
    return [SubjectMovedOut(subject_id=s.subject_id, community_id=s.community_id, moved_out_on=on, reason=reason)]
