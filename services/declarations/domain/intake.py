"""Intake decisions: one points item (a declaration or a deduction) from a command and the facts.

Every refusal is a ``Rejected`` with a zh-CN reason, a stable English code and a 4xx status; the
handler appends nothing then. The handler passes in today's date (Asia/Shanghai), the ids and
the facts read under lock in the same transaction (subject, cap usage, certified months).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from services.declarations.domain.catalogue import Rule, RuleCatalogue
from services.declarations.domain.roster import Subject
from shared.errors import Rejected, require_same_community
from shared.events.declarations import DeclarationSubmitted, DeductionRecorded
from shared.vocabulary import BULK_CHANNELS, CATEGORIES, CHANNELS, DECLARATION_CHANNELS, ENTRY_STAFF, roles_text

STAFF = ENTRY_STAFF
# Which role may use which channel (seed: 口头、微信、QQ、社区微信公众平台、手机党建积分APP).
CHANNEL_ROLES: dict[str, tuple[str, ...]] = {
    "app": ("declarant", *STAFF),
    "wechat": ("declarant", *STAFF),
    "qq": ("declarant", *STAFF),
    "official_account": ("site",),  # the community's WeChat official account, through a site credential
    "oral": STAFF,  # a recorder enters what the subject says
}
assert set(CHANNEL_ROLES) == set(DECLARATION_CHANNELS)


@dataclass(frozen=True)
class Actor:
    sub: str
    role: str
    community: str  # "*" for county roles
    subject_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ItemRequest:
    community_id: str
    subject_id: str
    rule_code: str
    quantity: int
    occurred_on: dt.date
    description: str = ""
    evidence: tuple[str, ...] = ()
    category: str | None = None  # which of the subject's categories; default: the first the rule fits


@dataclass(frozen=True)
class Facts:
    today: dt.date  # in the county's time zone
    community_known: bool
    month_certified: bool  # the occurrence month of this community
    subject: Subject | None
    used: int  # |points| this subject already has under this rule in that month


@dataclass(frozen=True)
class Scored:
    rule: Rule
    category: str
    points: int


def require_community(actor: Actor, community_id: str) -> None:
    require_same_community(actor.community, community_id)


def require_role(actor: Actor, roles: tuple[str, ...], what: str) -> None:
    if actor.role not in roles:
        raise Rejected(f"{what}需要以下角色之一：{roles_text(roles)}", status=403, code="forbidden_role")


def assess(req: ItemRequest, actor: Actor, facts: Facts, catalogue: RuleCatalogue, *, deduction: bool) -> Scored:
    """Every rule an item must pass, in the order a recorder would check them."""
    require_community(actor, req.community_id)
    if not facts.community_known:
        raise Rejected(f"没有登记社区 {req.community_id}", code="unknown_community")
    s = facts.subject
    if s is None:
        raise Rejected(f"没有登记积分主体 {req.subject_id}", code="unknown_subject")
    if s.community_id != req.community_id:
        raise Rejected(f"{s.name} 不属于社区 {req.community_id}", code="subject_not_in_community")
    if req.occurred_on > facts.today:
        raise Rejected(f"发生日期 {req.occurred_on} 晚于今天（{facts.today}），不能预先申报", code="future_date")
    if not s.active_on(req.occurred_on):
        raise Rejected(f"{s.name} 在 {req.occurred_on} 不是本社区在册主体（未登记或已迁出）", code="subject_inactive")
    month = req.occurred_on.strftime("%Y-%m")
    if facts.month_certified:
        raise Rejected(f"{month} 的积分已审核认定，不再受理；补录请由监督员走更正程序", status=409,
                       code="month_certified")
    rule = catalogue.rule(req.rule_code, month)
    if rule is None:
        raise Rejected(f"{month} 适用的积分目录中没有项目 {req.rule_code}", code="unknown_rule")
    if deduction and not rule.is_deduction:
        raise Rejected(f"{rule.title} 是加分项目，请通过申报录入", code="not_a_deduction_rule")
    if not deduction and rule.is_deduction:
        raise Rejected(f"{rule.title} 是减分项目，只能由记录员或监督员登记减分", code="deduction_rule")
    if actor.role not in rule.recorded_by:
        raise Rejected(f"{rule.title} 只能由 {roles_text(rule.recorded_by)} 录入", status=403,
                       code="forbidden_role")
    category = _category(rule, s, req.category)
    if not 1 <= req.quantity <= rule.max_quantity:
        raise Rejected(f"数量 {req.quantity}{rule.unit} 不合理（每条 1 至 {rule.max_quantity}{rule.unit}）",
                       code="quantity_out_of_range")
    if rule.evidence_required and not req.evidence:
        raise Rejected(f"{rule.title} 须附证明材料（照片等）", code="evidence_required")
    points = rule.score(req.quantity)
    if rule.monthly_cap is not None and facts.used + abs(points) > rule.monthly_cap:
        left = max(0, rule.monthly_cap - facts.used)
        raise Rejected(f"{s.name} 本月“{rule.title}”已得 {facts.used} 分，上限 {rule.monthly_cap} 分，"
                       f"本条 {abs(points)} 分超出上限（还可得 {left} 分）", code="monthly_cap_exceeded",
                       used=facts.used, cap=rule.monthly_cap, remaining=left)
    return Scored(rule, category, points)


def _category(rule: Rule, subject: Subject, wanted: str | None) -> str:
    if wanted is not None:
        if wanted not in subject.categories:
            raise Rejected(f"{subject.name} 不属于类别 {CATEGORIES.get(wanted, wanted)}", code="category_not_held")
        if not rule.applies_to(wanted):
            raise Rejected(f"“{rule.title}”不适用于{CATEGORIES.get(wanted, wanted)}", code="rule_not_for_category")
        return wanted
    for c in CATEGORIES:  # catalogue order: deterministic
        if c in subject.categories and rule.applies_to(c):
            return c
    held = "、".join(CATEGORIES[c] for c in subject.categories if c in CATEGORIES)
    raise Rejected(f"“{rule.title}”不适用于 {subject.name} 的类别（{held}）", code="rule_not_for_category")


def decide_declaration(req: ItemRequest, channel: str, actor: Actor, facts: Facts, catalogue: RuleCatalogue,
                       item_id: str, *, source_id: str | None = None) -> DeclarationSubmitted:
    if channel in CHANNEL_ROLES:
        require_role(actor, CHANNEL_ROLES[channel], f"通过“{CHANNELS[channel]}”渠道申报")
    elif channel not in BULK_CHANNELS:
        usable = "、".join(f"{c}（{CHANNELS[c]}）" for c in CHANNEL_ROLES)
        raise Rejected(f"不认识的申报渠道 {channel!r}（可用：{usable}）", code="unknown_channel")
    if actor.role == "declarant" and req.subject_id not in actor.subject_ids:
        raise Rejected("申报人只能为本人（或本家庭）申报", status=403, code="not_own_subject")
    scored = assess(req, actor, facts, catalogue, deduction=False)
    declared_by = actor.sub if actor.role == "declarant" else req.subject_id
    return DeclarationSubmitted(**_item(req, scored, item_id, channel), entered_by=actor.sub,
                                declared_by=declared_by, source_id=source_id)


def decide_deduction(req: ItemRequest, reason: str, actor: Actor, facts: Facts, catalogue: RuleCatalogue,
                     item_id: str) -> DeductionRecorded:
    require_role(actor, STAFF, "登记减分")
    if not reason.strip():
        raise Rejected("减分必须写明原因", code="reason_required")
    scored = assess(req, actor, facts, catalogue, deduction=True)
    return DeductionRecorded(**_item(req, scored, item_id, "office"), entered_by=actor.sub, declared_by=actor.sub,
                             reason=reason)


def _item(req: ItemRequest, scored: Scored, item_id: str, channel: str) -> dict[str, object]:
    return dict(
        item_id=item_id, community_id=req.community_id, subject_id=req.subject_id, category=scored.category,
        rule_code=scored.rule.code, rule_version=scored.rule.version, rule_title=scored.rule.title,
        dimension=scored.rule.dimension, quantity=req.quantity, points=scored.points, channel=channel,
        occurred_on=req.occurred_on, description=req.description, evidence=req.evidence,
    )
