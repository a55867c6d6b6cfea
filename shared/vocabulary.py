"""The one zh-CN vocabulary of the scheme: categories, dimensions, statuses, channels and roles.

Every service, page and export takes its words from here (pages through ``GET /vocabulary``), so
the same code never reads two ways on two screens. Codes are English (code, events, URLs);
the words are what people in the community office say. Source: domain.md (the seed report).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

# Points subjects (积分主体), 10 categories, in the seed's order (the order is used for defaults).
CATEGORIES: Mapping[str, str] = MappingProxyType({
    "party_organization": "安置地党支部和党小组",
    "party_member": "党员",
    "mass_organization": "群团组织",
    "resident": "居民",
    "family": "家庭",
    "employed": "创业就业者",
    "community_cadre": "社区干部",
    "volunteer": "志愿者",
    "building_head": "楼栋长",
    "property_staff": "物业人员（保洁员）",
})

# What earns or costs points: 14 dimensions (积分项目条目化).
DIMENSIONS: Mapping[str, str] = MappingProxyType({
    "political_quality": "政治思想素质",
    "leading_development": "带领发展能力",
    "duty_performance": "履职尽责素质",
    "service_to_people": "为民服务水平",
    "affairs_handling": "处理事务能力",
    "dispute_mediation": "矛盾纠纷调处",
    "training_employment": "组织培训就业成效",
    "community_building": "社区建设参与",
    "livelihood_employment": "生活工作就业",
    "law_abiding": "遵纪守法表现",
    "civility_hygiene": "文明卫生表现",
    "volunteer_service": "志愿服务参与",
    "family_tradition": "家风家教情况",
    "social_morality": "社会公德表现",
})

# A points item's status, as every page and export shows it (one word per status: 已核实, never 审核通过).
ITEM_STATUSES: Mapping[str, str] = MappingProxyType({
    "submitted": "待审核",
    "verified": "已核实",
    "returned": "已退回",
    "rejected": "已驳回",
    "certified": "已认定",
    "corrected": "已更正",
    "carried": "已转入下月审核",
})

# A subject's status on the roster.
SUBJECT_STATUSES: Mapping[str, str] = MappingProxyType({
    "active": "在册",
    "moved_out": "已迁出",
})

# Earning channels (挣分渠道); the first five are the seed's declaration channels.
CHANNELS: Mapping[str, str] = MappingProxyType({
    "oral": "口头",
    "wechat": "微信",
    "qq": "QQ",
    "official_account": "社区微信公众平台",
    "app": "手机党建积分APP",
    "activity": "活动",
    "needs_board": "需求",
    "enterprise": "企业",
    "office": "办公室（减分）",
    "correction": "更正",
})
DECLARATION_CHANNELS = ("oral", "wechat", "qq", "official_account", "app")  # POST /declarations
BULK_CHANNELS = ("activity", "needs_board", "enterprise")  # their own routes

# Where a certified list is posted for public supervision (domain: 公示).
NOTICE_CHANNELS: Mapping[str, str] = MappingProxyType({
    "wechat_official_account": "社区微信公众号",
    "party_wechat_group": "党员微信群",
    "bulletin_board": "小区公告栏",
})

# What became of an objection to a posted item.
OBJECTION_STATUSES: Mapping[str, str] = MappingProxyType({
    "open": "待处理",
    "upheld": "已采纳",
    "dismissed": "不予采纳",
})

# Roles (same codes as shared.auth.Role).
ROLES: Mapping[str, str] = MappingProxyType({
    "declarant": "申报人",
    "recorder": "记录员",
    "supervisor": "监督员",
    "leading_group": "领导小组成员",
    "secretary": "第一责任人",
    "clerk": "超市收银员",
    "auditor": "审计员",
    "county_admin": "县级管理员",
    "site": "社区站点",
})
# The Love Supermarket (爱心超市): limit periods and what became of a redemption.
LIMIT_PERIODS: Mapping[str, str] = MappingProxyType({"month": "每月", "quarter": "每季度", "year": "每年"})
REDEMPTION_STATUSES: Mapping[str, str] = MappingProxyType({"redeemed": "已兑换", "returned": "已退货"})

# Named role sets (one name, one meaning).
ENTRY_STAFF = ("recorder", "supervisor")  # enter oral items, deductions, attendance (domain: deductions)
ROSTER_KEEPERS = ("recorder", "supervisor", "county_admin")
LEADING_GROUP = ("leading_group", "secretary")
COUNTY_ROLES = ("auditor", "county_admin")


def words(codes: Mapping[str, str], code: str) -> str:
    """The zh-CN word for a code; an unknown code is shown as itself (never a blank cell)."""
    return codes.get(code, code)


def roles_text(roles: tuple[str, ...] | list[str]) -> str:
    return "、".join(ROLES.get(r, r) for r in roles)


def as_json() -> dict[str, Any]:
    """Everything above, for pages (``GET /vocabulary``)."""
    return {"categories": dict(CATEGORIES), "dimensions": dict(DIMENSIONS), "item_statuses": dict(ITEM_STATUSES),
            "subject_statuses": dict(SUBJECT_STATUSES), "channels": dict(CHANNELS), "roles": dict(ROLES),
            "limit_periods": dict(LIMIT_PERIODS), "redemption_statuses": dict(REDEMPTION_STATUSES)}


# ---- ranking (排名) ----------------------------------------------------------------------------
PERIOD_KINDS: Mapping[str, str] = MappingProxyType({"month": "月度", "quarter": "季度", "year": "年度"})
NOT_RANKED: Mapping[str, str] = MappingProxyType({
    "joined_mid_period": "不参与排名（期间中途加入）",
    "moved_out_mid_period": "不参与排名（期间中途迁出）",
})
CONSEQUENCES: Mapping[str, str] = MappingProxyType({
    "excellent_eligible": "可评优秀",
    "promotion_priority": "提拔优先",
    "eligibility_lost": "取消评优评先资格",
})
TALKS: Mapping[str, str] = MappingProxyType({"encouragement": "激励谈话", "reminder": "提醒谈话"})
# Ten Most Beautiful (十个最美): award -> the ranking that nominates (a category, or "woman").
TEN_MOST_BEAUTIFUL: Mapping[str, str] = MappingProxyType({
    "party_organization": "最美党组织",
    "party_member": "最美党员",
    "resident": "最美居民",
    "family": "最美家庭",
    "employed": "最美创业就业者",
    "community_cadre": "最美社区干部",
    "building_head": "最美基层干部（楼栋长）",
    "woman": "最美巾帼",
    "volunteer": "最美志愿者",
    "property_staff": "最美物业人员",
})
COUNTY_WIDE = "全县"
