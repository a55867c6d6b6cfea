"""Read models as plain SQL: what the counter, the receipt, statistics and the donor report show."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import orjson

from services.exchange.state import items_by_id
from shared.vocabulary import CATEGORIES, LIMIT_PERIODS, words


async def community_name(conn: asyncpg.Connection, community_id: str) -> str:
    return await conn.fetchval("select name from communities where community_id = $1", community_id) or community_id


async def member(conn: asyncpg.Connection, code: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """select m.*, coalesce(b.awarded + b.corrected - b.redeemed + b.returned, 0) as spendable,
                  coalesce((select sum(points) from points_items p where p.subject_id = m.subject_id
                             and p.state = 'submitted'), 0) as pending
           from members m left join balances b using (subject_id) where m.member_code = $1""", code)
    if row is None:
        return None
    return {"member_code": row["member_code"], "name": row["name"], "community_id": row["community_id"],
            "community_name": await community_name(conn, row["community_id"]),
            "categories": [words(CATEGORIES, c) for c in row["categories"]], "active": row["active"],
            "spendable": int(row["spendable"]), "pending": int(row["pending"])}


def limits_text(limits: Any) -> str:
    parts = []
    if limits.categories:
        parts.append("限" + "、".join(words(CATEGORIES, c) for c in limits.categories))
    if limits.windows:
        parts.append("兑换期 " + "，".join(f"{w.first_day:%m月%d日}至{w.last_day:%m月%d日}" for w in limits.windows))
    if limits.per_subject is not None:
        parts.append(f"{words(LIMIT_PERIODS, limits.period)}每人限 {limits.per_subject}")
    return "；".join(parts)


async def catalogue(conn: asyncpg.Connection, community_id: str, at: dt.datetime) -> list[dict[str, Any]]:
    rows = await conn.fetch("""select c.item_id, s.received - s.redeemed + s.returned as in_stock
                               from catalogue_items c join stock s using (item_id)
                               where c.community_id = $1 order by c.name, c.item_id""", community_id)
    items = await items_by_id(conn, [r["item_id"] for r in rows])
    out = []
    for r in rows:
        item = items[r["item_id"]]
        price, limits = item.price_at(at), item.limits_at(at)
        if price is None or limits is None:
            continue
        out.append({"item_id": item.item_id, "name": item.name, "unit": item.unit, "price": price,
                    "in_stock": r["in_stock"], "limits": limits.model_dump(mode="json"),
                    "limits_text": limits_text(limits)})
    return out


async def receipt(conn: asyncpg.Connection, redemption_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("select * from redemptions where redemption_id = $1", redemption_id)
    if row is None:
        return None
    lines = row["lines"] if not isinstance(row["lines"], str) else orjson.loads(row["lines"])
    return {"redemption_id": row["redemption_id"], "community_id": row["community_id"],
            "community_name": await community_name(conn, row["community_id"]), "subject_name": row["subject_name"],
            "member_code": row["member_code"], "lines": lines, "total_points": row["total_points"],
            "month": row["month"], "counter": row["counter"], "clerk_name": row["clerk_name"],
            "redeemed_at": row["redeemed_at"], "returned_at": row["returned_at"],
            "return_reason": row["return_reason"], "status": "returned" if row["returned_at"] else "redeemed"}


async def statistics(conn: asyncpg.Connection, community_id: str, month: str) -> dict[str, Any]:
    """A redemption counts in its month, a return (negative) in the month of the return (domain.md)."""
    totals = await conn.fetchrow(
        """select coalesce(sum(quantity), 0) as items, coalesce(sum(points), 0) as points,
                  count(distinct subject_id) filter (where kind = 'redeemed') as residents,
                  count(distinct redemption_id) filter (where kind = 'redeemed') as redemptions,
                  count(distinct redemption_id) filter (where kind = 'returned') as returns
           from movements where community_id = $1 and month = $2""", community_id, month)
    top = await conn.fetch(
        """select item_id, max(item_name) as name, sum(quantity) as quantity, sum(points) as points
           from movements where community_id = $1 and month = $2 group by item_id
           order by sum(quantity) desc, item_id limit 10""", community_id, month)
    return {"community_id": community_id, "community_name": await community_name(conn, community_id),
            "month": month, "items_exchanged": int(totals["items"]), "residents": int(totals["residents"]),
            "points_spent": int(totals["points"]), "redemptions": int(totals["redemptions"]),
            "returns": int(totals["returns"]),
            "top_items": [{"item_id": t["item_id"], "name": t["name"], "quantity": int(t["quantity"]),
                           "points": int(t["points"])} for t in top]}


async def donors(conn: asyncpg.Connection, community_id: str, month: str) -> dict[str, Any]:
    rows = await conn.fetch(
        """select donor, item_name, sum(quantity) as quantity, count(*) as donations, min(received_on) as first_day
           from donations where community_id = $1 and month = $2
           group by donor, item_name order by donor, item_name""", community_id, month)
    return {"community_id": community_id, "community_name": await community_name(conn, community_id),
            "month": month, "units_received": sum(int(r["quantity"]) for r in rows),
            "donors": [{"donor": r["donor"], "item_name": r["item_name"], "quantity": int(r["quantity"]),
                        "donations": int(r["donations"]), "first_day": r["first_day"].isoformat()} for r in rows]}
