"""Read models' queries (plain SQL over the two projections: items and the review board).

Every answer that shows figures reads them inside one ``snapshot`` (a read-only repeatable-read
transaction): items and totals never come from two moments, e.g. while a certification is applied.
An item is shown in the month it is reviewed in (its own, or the one it was carried into).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from shared.events.review import PointsAwarded, certification_digest

STATUS_OF = "coalesce(b.status, 'submitted')"
MONTH_OF = "coalesce(b.month, i.month)"


@contextlib.asynccontextmanager
async def snapshot(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        yield conn


async def glance(conn: asyncpg.Connection, community_id: str, month: str) -> list[dict[str, Any]]:
    """The month at a glance: per category and dimension, items and points by status."""
    rows = await conn.fetch(
        f"""select i.category, i.dimension, count(*) as items,
                   count(*) filter (where {STATUS_OF} = 'submitted') as waiting,
                   count(*) filter (where {STATUS_OF} = 'verified') as verified,
                   count(*) filter (where {STATUS_OF} in ('returned', 'rejected')) as not_counted,
                   coalesce(sum(i.points) filter (where {STATUS_OF} = 'verified'), 0) as verified_points
            from items i left join board_status b using (item_id)
            where i.community_id = $1 and {MONTH_OF} = $2
            group by i.category, i.dimension order by i.category, i.dimension""", community_id, month)
    return [dict(r) for r in rows]


async def items(conn: asyncpg.Connection, community_id: str, month: str, status: str | None = None,
                limit: int = 500) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""select i.item_id, i.subject_id, coalesce(s.name, '') as subject_name, i.category, i.dimension,
                   i.rule_code, i.points, i.kind, i.occurred_on, i.description, i.entered_by, i.declared_by,
                   {STATUS_OF} as status, coalesce(b.note, '') as note, b.carried_from
            from items i left join board_status b using (item_id) left join subjects s using (subject_id)
            where i.community_id = $1 and {MONTH_OF} = $2 and ($3::text is null or {STATUS_OF} = $3)
            order by i.occurred_on, i.item_id limit $4""", community_id, month, status, limit)
    return [dict(r) | {"occurred_on": r["occurred_on"].isoformat()} for r in rows]


async def carried_out(conn: asyncpg.Connection, community_id: str, month: str) -> list[dict[str, Any]]:
    """Items declared for this month that were carried into a later one (they arrived after certification)."""
    rows = await conn.fetch(
        """select i.item_id, coalesce(s.name, '') as subject_name, i.points, b.month as to_month, b.note
           from items i join board_status b using (item_id) left join subjects s using (subject_id)
           where i.community_id = $1 and i.month = $2 and b.month <> $2 order by i.item_id""", community_id, month)
    return [dict(r) for r in rows]


async def month(conn: asyncpg.Connection, community_id: str, month: str) -> dict[str, Any] | None:
    r = await conn.fetchrow("select * from board_months where community_id = $1 and month = $2", community_id, month)
    if r is None:
        return None
    notices = await conn.fetch("""select channel, posted_at from board_notices where community_id = $1 and month = $2
                                  order by posted_at, channel""", community_id, month)
    return dict(r) | {"notices": [dict(n) for n in notices]}


async def signing(conn: asyncpg.Connection, community_id: str, month: str) -> dict[str, Any]:
    """The list members sign: its digest (as certification computes it) and who has signed it."""
    rows = await conn.fetch(
        f"""select i.item_id, i.community_id, i.subject_id, i.category, i.dimension, i.rule_code, i.points
            from items i join board_status b using (item_id)
            where i.community_id = $1 and {MONTH_OF} = $2 and b.status = 'verified'""", community_id, month)
    awards = [PointsAwarded(month=month, **dict(r)) for r in rows]
    waiting = await conn.fetchval(
        f"""select count(*) from items i left join board_status b using (item_id)
            where i.community_id = $1 and {MONTH_OF} = $2 and {STATUS_OF} = 'submitted'""", community_id, month)
    digest = certification_digest(awards)
    signatures = await conn.fetch(
        """select signer, role, name, digest, signed_at from board_signatures where community_id = $1 and month = $2
           order by signed_at, signer""", community_id, month)
    return {"digest": digest, "count": len(awards), "total": sum(a.points for a in awards), "waiting": waiting,
            "signatures": [dict(s) | {"current": s["digest"] == digest} for s in signatures]}


async def notice_lines(conn: asyncpg.Connection, community_id: str, month: str) -> list[dict[str, Any]]:
    """Per subject: certified points of a complete month (公示名单)."""
    rows = await conn.fetch(
        """select a.subject_id, coalesce(max(s.name), '') as name,
                  string_agg(distinct a.category, '、') as categories, count(*) as items, sum(a.points) as points
           from board_awards a join board_months m using (community_id, month)
                left join subjects s using (subject_id)
           where a.community_id = $1 and a.month = $2 and m.complete
           group by a.subject_id order by sum(a.points) desc, a.subject_id""", community_id, month)
    return [dict(r) for r in rows]


async def objections(conn: asyncpg.Connection, community_id: str, status: str | None = None) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """select o.*, a.subject_id, coalesce(s.name, '') as subject_name, a.points
           from board_objections o left join board_awards a using (item_id) left join subjects s using (subject_id)
           where o.community_id = $1 and ($2::text is null or o.status = $2) order by o.raised_at, o.objection_id""",
        community_id, status)
    return [dict(r) for r in rows]


async def corrections(conn: asyncpg.Connection, community_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch("select * from board_corrections where community_id = $1 order by made_at, correction_id",
                            community_id)
    return [dict(r) for r in rows]


async def community_name(conn: asyncpg.Connection, community_id: str) -> str:
    return await conn.fetchval("select name from communities where community_id = $1",  # type: ignore[no-any-return]
                               community_id) or community_id


async def notice_items(conn: asyncpg.Connection, community_id: str, month: str) -> list[dict[str, Any]]:
    """Item by item (条目明细), so a resident can name the item they object to."""
    rows = await conn.fetch(
        """select a.item_id, a.subject_id, coalesce(s.name, '') as name, a.dimension, a.rule_code, a.points
           from board_awards a join board_months m using (community_id, month) left join subjects s using (subject_id)
           where a.community_id = $1 and a.month = $2 and m.complete order by a.subject_id, a.item_id""",
        community_id, month)
    return [dict(r) for r in rows]
