"""Ledger queries (台账): filtered items with totals per subject, and a CSV export for Excel."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.declarations.context import Me
from shared.auth import Principal, Role, require_community, require_role
from shared.http import ID_PATTERN, MONTH_PATTERN
from shared.vocabulary import CATEGORIES, CHANNELS, DIMENSIONS, ITEM_STATUSES

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
    args = (community_id, subject_id, month, status, channel, rule_code, own)
    # Items and totals from one snapshot: a certification being applied meanwhile shows in both or neither.
    async with request.app.state.runtime.pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                                                 readonly=True):
        rows = await conn.fetch(ITEMS, *args, limit)
        totals = [dict(r) for r in await conn.fetch(TOTALS, *args)]
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
    return items, totals


Limit = Annotated[int, Query(ge=1, le=100_000)]
Month = Annotated[str | None, Query(pattern=MONTH_PATTERN, description="YYYY-MM")]
CommunityId = Annotated[str, Query(min_length=1, max_length=64, pattern=ID_PATTERN)]
SubjectId = Annotated[str | None, Query(min_length=1, max_length=64, pattern=ID_PATTERN)]
RuleCode = Annotated[str | None, Query(min_length=1, max_length=64, pattern=ID_PATTERN)]
Status = Annotated[str | None, Query(pattern="^(" + "|".join(ITEM_STATUSES) + ")$", description="、".join(
    f"{k}={v}" for k, v in ITEM_STATUSES.items()))]
Channel = Annotated[str | None, Query(pattern="^(" + "|".join(CHANNELS) + ")$")]


@router.get("/ledger")
async def ledger(request: Request, principal: Me, community_id: CommunityId, subject_id: SubjectId = None,
                 month: Month = None, status: Status = None, channel: Channel = None,
                 rule_code: RuleCode = None, limit: Limit = 5000) -> dict[str, Any]:
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


# Office staff read the export in Excel: codes become the words they use (shared.vocabulary).
CHANNEL_TITLES = CHANNELS
STATUS_TITLES = ITEM_STATUSES


def _csv_cell(item: dict[str, Any], key: str) -> Any:
    value = item[key]
    if key == "evidence":
        return " ".join(value)
    if key == "channel":
        return CHANNEL_TITLES.get(value, value)
    if key == "status":
        return STATUS_TITLES.get(value, value)
    return value


@router.get("/ledger.csv", response_class=Response, responses={200: {
    "description": "台账（CSV，UTF-8 带 BOM）", "content": {"text/csv": {"schema": {"type": "string"}}}}})
async def ledger_csv(request: Request, principal: Me, community_id: CommunityId, subject_id: SubjectId = None,
                     month: Month = None, status: Status = None, channel: Channel = None,
                     rule_code: RuleCode = None, limit: Limit = 100_000) -> Response:
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
