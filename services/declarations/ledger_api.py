"""Ledger queries (台账): filtered items with totals per subject, and a CSV export for Excel."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.declarations.context import Me
from services.declarations.domain.catalogue import CATEGORIES, DIMENSIONS
from shared.auth import Principal, Role, require_community, require_role

router = APIRouter(tags=["ledger"])
READERS = (Role.recorder, Role.supervisor, Role.leading_group, Role.secretary, Role.auditor, Role.county_admin,
           Role.declarant)

FILTERED = """
from ledger l
left join ledger_subjects s on s.subject_id = l.subject_id
left join ledger_review r on r.item_id = l.item_id
where l.community_id = $1
  and ($2::text is null or l.subject_id = $2) and ($3::text is null or l.month = $3)
  and ($4::text is null or coalesce(r.status, l.status) = $4) and ($5::text is null or l.channel = $5)
  and ($6::text is null or l.rule_code = $6) and ($7::text[] is null or l.subject_id = any($7))
"""
ITEMS = """select l.*, coalesce(s.name, l.subject_id) as subject_name, coalesce(r.status, l.status) as review_status,
       coalesce(r.note, '') as review_note""" + FILTERED + "order by l.occurred_on, l.recorded_at, l.item_id limit $8"
# Totals over every matching item, not just the page returned.
TOTALS = """select l.subject_id, min(coalesce(s.name, l.subject_id)) as subject_name, sum(l.points)::int as points,
       count(*)::int as items""" + FILTERED + "group by l.subject_id order by points desc, l.subject_id"


async def query(request: Request, principal: Principal, community_id: str, subject_id: str | None,
                month: str | None, status: str | None, channel: str | None, rule_code: str | None,
                limit: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    require_role(principal, *READERS)
    require_community(principal, community_id)
    own = list(principal.subject_ids) if principal.role == Role.declarant else None  # declarants: own items only
    pool = request.app.state.runtime.pool
    args = (community_id, subject_id, month, status, channel, rule_code, own)
    rows = await pool.fetch(ITEMS, *args, limit)
    items = [{
        "item_id": r["item_id"], "community_id": r["community_id"], "subject_id": r["subject_id"],
        "subject_name": r["subject_name"], "category": r["category"], "category_title": CATEGORIES.get(r["category"]),
        "rule_code": r["rule_code"], "rule_title": r["rule_title"], "rule_version": r["rule_version"],
        "dimension": r["dimension"], "dimension_title": DIMENSIONS.get(r["dimension"]), "kind": r["kind"],
        "quantity": r["quantity"], "points": r["points"], "channel": r["channel"], "entered_by": r["entered_by"],
        "declared_by": r["declared_by"], "evidence": list(r["evidence"]), "status": r["review_status"],
        "review_note": r["review_note"], "occurred_on": r["occurred_on"], "month": r["month"],
        "description": r["description"], "reason": r["reason"], "source_id": r["source_id"],
        "recorded_at": r["recorded_at"], "event_id": str(r["event_id"]),
    } for r in rows]
    totals = [dict(r) for r in await pool.fetch(TOTALS, *args)]
    return items, totals


Limit = Annotated[int, Query(ge=1, le=100_000)]
Month = Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]


@router.get("/ledger")
async def ledger(request: Request, principal: Me, community_id: str, subject_id: str | None = None,
                 month: Month = None, status: str | None = None, channel: str | None = None,
                 rule_code: str | None = None, limit: Limit = 5000) -> dict[str, Any]:
    items, totals = await query(request, principal, community_id, subject_id, month, status, channel, rule_code,
                                limit)
    return {"items": items, "totals": totals, "count": sum(t["items"] for t in totals),
            "points": sum(t["points"] for t in totals), "returned": len(items), "limit": limit}


COLUMNS = [("item_id", "条目编号"), ("occurred_on", "发生日期"), ("subject_id", "主体编号"), ("subject_name", "主体"),
           ("category_title", "类别"), ("dimension_title", "维度"), ("rule_code", "项目代码"),
           ("rule_title", "积分项目"),
           ("quantity", "数量"), ("points", "积分"), ("channel", "渠道"), ("declared_by", "申报人"),
           ("entered_by", "录入人"), ("status", "状态"), ("evidence", "证明材料"), ("description", "说明"),
           ("reason", "减分原因")]


# Office staff read the export in Excel: codes become the words they use (as on the recorder's page).
CHANNEL_TITLES = {"oral": "口头", "wechat": "微信", "qq": "QQ", "official_account": "社区微信公众平台",
                  "app": "手机党建积分APP", "activity": "活动", "needs_board": "需求", "enterprise": "企业",
                  "office": "办公室（减分）", "correction": "更正"}
STATUS_TITLES = {"submitted": "待审核", "verified": "已核实", "returned": "已退回", "rejected": "已驳回",
                 "certified": "已认定", "corrected": "已更正"}


def _csv_cell(item: dict[str, Any], key: str) -> Any:
    value = item[key]
    if key == "evidence":
        return " ".join(value)
    if key == "channel":
        return CHANNEL_TITLES.get(value, value)
    if key == "status":
        return STATUS_TITLES.get(value, value)
    return value


@router.get("/ledger.csv")
async def ledger_csv(request: Request, principal: Me, community_id: str, subject_id: str | None = None,
                     month: Month = None, status: str | None = None, channel: str | None = None,
                     rule_code: str | None = None, limit: Limit = 100_000) -> Response:
    """UTF-8 with a BOM, so Excel opens the Chinese correctly."""
    items, _ = await query(request, principal, community_id, subject_id, month, status, channel, rule_code, limit)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([title for _, title in COLUMNS])
    for i in items:
        writer.writerow([_csv_cell(i, k) for k, _ in COLUMNS])
    name = f"ledger-{community_id}-{month or 'all'}.csv"
    return Response(("\ufeff" + out.getvalue()).encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{name}"'})
