"""Write-side state: what review decisions are made against, updated in the command's transaction.

Reads and writes here happen under the community's advisory lock, so decisions for one
community are serialised (its events are one stream anyway).
"""

from __future__ import annotations

import asyncpg

from services.review.domain.model import Item, MonthState
from services.review.domain.notice import Objection

SCHEMA = """
create table if not exists review_status (
    item_id      text primary key,
    community_id text not null,
    month        text not null,
    status       text not null
);
create table if not exists review_months (
    community_id     text not null,
    month            text not null,
    certified_at     timestamptz,
    window_closes_at timestamptz,
    finalised_at     timestamptz,
    channels         text[] not null default '{}',
    primary key (community_id, month)
);
create table if not exists review_objections (
    objection_id text primary key,
    community_id text not null,
    month        text not null,
    item_id      text not null,
    raised_by    text not null,
    status       text not null,
    unique (item_id, raised_by)
);
"""

_ITEM_COLUMNS = """i.item_id, i.community_id, i.month, i.subject_id, i.category, i.dimension, i.rule_code, i.points,
                   i.entered_by, i.declared_by, coalesce(s.status, 'submitted') as status"""


def _item(r: asyncpg.Record) -> Item:
    return Item(*r)


async def lock_community(conn: asyncpg.Connection, community_id: str) -> None:
    await conn.execute("select pg_advisory_xact_lock(hashtext('review:' || $1))", community_id)


async def item(conn: asyncpg.Connection, item_id: str) -> Item | None:
    r = await conn.fetchrow(f"""select {_ITEM_COLUMNS} from items i left join review_status s using (item_id)
                                where i.item_id = $1""", item_id)
    return _item(r) if r else None


async def items_of_month(conn: asyncpg.Connection, community_id: str, month: str) -> list[Item]:
    rows = await conn.fetch(f"""select {_ITEM_COLUMNS} from items i left join review_status s using (item_id)
                                where i.community_id = $1 and i.month = $2""", community_id, month)
    return [_item(r) for r in rows]


async def set_status(conn: asyncpg.Connection, it: Item, status: str) -> None:
    await conn.execute(
        """insert into review_status (item_id, community_id, month, status) values ($1, $2, $3, $4)
           on conflict (item_id) do update set status = excluded.status""",
        it.item_id, it.community_id, it.month, status)


async def month(conn: asyncpg.Connection, community_id: str, month: str) -> MonthState:
    r = await conn.fetchrow("select * from review_months where community_id = $1 and month = $2", community_id, month)
    if r is None:
        return MonthState(community_id, month)
    return MonthState(community_id, month, r["certified_at"], None, r["window_closes_at"], r["finalised_at"],
                      tuple(r["channels"]))


async def certified_months(conn: asyncpg.Connection, community_id: str) -> set[str]:
    rows = await conn.fetch("select month from review_months where community_id = $1 and certified_at is not null",
                            community_id)
    return {r["month"] for r in rows}


async def save_month(conn: asyncpg.Connection, m: MonthState) -> None:
    await conn.execute(
        """insert into review_months (community_id, month, certified_at, window_closes_at, finalised_at, channels)
           values ($1, $2, $3, $4, $5, $6)
           on conflict (community_id, month) do update set certified_at = excluded.certified_at,
               window_closes_at = excluded.window_closes_at, finalised_at = excluded.finalised_at,
               channels = excluded.channels""",
        m.community_id, m.month, m.certified_at, m.window_closes_at, m.finalised_at, list(m.channels))


async def objections(conn: asyncpg.Connection, community_id: str, month: str) -> list[Objection]:
    rows = await conn.fetch("""select objection_id, community_id, month, item_id, raised_by, status
                               from review_objections where community_id = $1 and month = $2""", community_id, month)
    return [Objection(*r) for r in rows]


async def objection(conn: asyncpg.Connection, objection_id: str) -> Objection | None:
    r = await conn.fetchrow("""select objection_id, community_id, month, item_id, raised_by, status
                               from review_objections where objection_id = $1""", objection_id)
    return Objection(*r) if r else None


async def save_objection(conn: asyncpg.Connection, o: Objection) -> None:
    await conn.execute(
        """insert into review_objections (objection_id, community_id, month, item_id, raised_by, status)
           values ($1, $2, $3, $4, $5, $6) on conflict (objection_id) do update set status = excluded.status""",
        o.objection_id, o.community_id, o.month, o.item_id, o.raised_by, o.status)


