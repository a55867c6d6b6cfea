"""The command side's snapshot of each community's review state, kept with the events.

``load`` reads the stream's version first and then the snapshot; ``save`` writes what ``evolve``
changed, in the same transaction as the append. Each snapshot write commits with the events it
folds, so a snapshot read after the version is never older than that version: if another command
committed in between, the append at the version read fails (ConcurrencyError) and the command is
decided again. Items themselves come from the declarations topic (``items.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from services.review.domain.evolve import ReviewState
from services.review.domain.model import Item, MonthState, Signature, Signer
from services.review.domain.notice import Objection

SCHEMA = """
create table if not exists review_status (
    item_id      text primary key,
    community_id text not null,
    month        text not null,
    status       text not null
);
alter table review_status add column if not exists carried_from text;
alter table review_status add column if not exists corrected integer not null default 0;
create index if not exists review_status_by_month on review_status (community_id, month);
create table if not exists review_months (
    community_id     text not null,
    month            text not null,
    certified_at     timestamptz,
    window_closes_at timestamptz,
    finalised_at     timestamptz,
    channels         text[] not null default '{}',
    primary key (community_id, month)
);
alter table review_months add column if not exists window_opened_at timestamptz;
create table if not exists review_signatures (
    position     bigserial primary key,
    community_id text not null,
    month        text not null,
    signer       text not null,
    role         text not null,
    name         text not null,
    digest       text not null,
    signed_at    timestamptz not null,
    unique (community_id, month, digest, signer)
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
create table if not exists review_clock (
    id             boolean primary key default true check (id),
    frozen_at      timestamptz,
    offset_seconds double precision not null default 0
);
"""

_COLS = """i.item_id, i.community_id, coalesce(s.month, i.month) as month, i.subject_id, i.category, i.dimension,
           i.rule_code, i.points, i.entered_by, i.declared_by, coalesce(s.status, 'submitted') as status,
           s.carried_from, coalesce(s.corrected, 0) as corrected"""
_OF_MONTH = f"""select {_COLS} from items i left join review_status s using (item_id)
                where i.community_id = $1 and i.month = $2 and coalesce(s.month, i.month) = $2
                union all
                select {_COLS} from review_status s join items i using (item_id)
                where s.community_id = $1 and s.month = $2 and i.month <> $2"""
_BY_ID = f"""select {_COLS} from items i left join review_status s using (item_id)
             where i.community_id = $1 and i.item_id = any($2::text[])"""
# items that reached review after their month was certified (the waiting queue keeps this cheap)
_LATE = f"""select {_COLS} from review_waiting w join items i using (item_id)
            left join review_status s using (item_id)
            join review_months m on m.community_id = i.community_id and m.month = coalesce(s.month, i.month)
            where w.community_id = $1 and m.certified_at is not null
              and coalesce(s.status, 'submitted') = 'submitted'"""


async def stream_version(conn: asyncpg.Connection, stream_id: str) -> int:
    """The stream's version, read before the snapshot (see the module's note)."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "select coalesce(max(version), 0) from events where stream_id = $1", stream_id)


async def community_of_item(conn: asyncpg.Connection, item_id: str) -> str | None:
    return await conn.fetchval("select community_id from items where item_id = $1", item_id)  # type: ignore[no-any-return]


async def community_of_objection(conn: asyncpg.Connection, objection_id: str) -> str | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "select community_id from review_objections where objection_id = $1", objection_id)


async def load(conn: asyncpg.Connection, community_id: str, *, item_ids: Iterable[str] = (),
               month_items: Iterable[str] = (), objections_of: Iterable[str] = (),
               objection_ids: Iterable[str] = (), late: bool = False) -> ReviewState:
    """The part of the community's state a command needs: every month (with signatures), and the
    items and objections asked for."""
    rows: list[asyncpg.Record] = []
    ids = list(item_ids)
    objection_rows = await conn.fetch(
        """select objection_id, community_id, month, item_id, raised_by, status from review_objections
           where community_id = $1 and (month = any($2::text[]) or objection_id = any($3::text[]))""",
        community_id, list(objections_of), list(objection_ids))
    ids += [r["item_id"] for r in objection_rows]
    if ids:
        rows += await conn.fetch(_BY_ID, community_id, ids)
    for m in month_items:
        rows += await conn.fetch(_OF_MONTH, community_id, m)
    if late:
        rows += await conn.fetch(_LATE, community_id)
    months = await conn.fetch("select * from review_months where community_id = $1", community_id)
    signatures = await conn.fetch("select * from review_signatures where community_id = $1 order by position",
                                  community_id)
    by_month: dict[str, list[Signature]] = {}
    for s in signatures:
        by_month.setdefault(s["month"], []).append(
            Signature(Signer(s["signer"], s["role"], community_id, s["name"]), s["digest"], s["signed_at"]))
    month_states = {r["month"]: MonthState(community_id, r["month"], r["certified_at"], r["window_opened_at"],
                                           r["window_closes_at"], r["finalised_at"], tuple(r["channels"]),
                                           tuple(by_month.pop(r["month"], ()))) for r in months}
    for month, sigs in by_month.items():
        month_states[month] = MonthState(community_id, month, signatures=tuple(sigs))
    return ReviewState(community_id, items={r["item_id"]: Item(*r) for r in rows}, months=month_states,
                       objections={r["objection_id"]: Objection(*r) for r in objection_rows})


async def save(conn: asyncpg.Connection, before: ReviewState, after: ReviewState) -> None:
    """Write what changed between the state decided on and the state its events leave behind."""
    items = [] if after.items is before.items else [i for k, i in after.items.items() if before.items.get(k) is not i]
    if items:
        await conn.execute(  # one statement for a page of looks or a month's certification
            """insert into review_status (item_id, community_id, month, status, carried_from, corrected)
               select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::integer[])
               on conflict (item_id) do update
               set month = excluded.month, status = excluded.status, carried_from = excluded.carried_from,
                   corrected = excluded.corrected""",
            *(list(column) for column in zip(*[(i.item_id, i.community_id, i.month, i.status, i.carried_from,
                                                i.corrected) for i in items], strict=True)))
        await conn.execute("delete from review_waiting where item_id = any($1::text[])", [i.item_id for i in items])
    for key, m in after.months.items():
        old = before.months.get(key)
        if old == m:
            continue
        await conn.execute(
            """insert into review_months (community_id, month, certified_at, window_opened_at, window_closes_at,
                                          finalised_at, channels)
               values ($1, $2, $3, $4, $5, $6, $7)
               on conflict (community_id, month) do update set certified_at = excluded.certified_at,
                   window_opened_at = excluded.window_opened_at, window_closes_at = excluded.window_closes_at,
                   finalised_at = excluded.finalised_at, channels = excluded.channels""",
            m.community_id, m.month, m.certified_at, m.window_opened_at, m.window_closes_at, m.finalised_at,
            list(m.channels))
        new = m.signatures[len(old.signatures) if old else 0:]
        if new:
            await conn.executemany(
                """insert into review_signatures (community_id, month, signer, role, name, digest, signed_at)
                   values ($1, $2, $3, $4, $5, $6, $7)""",
                [(m.community_id, m.month, s.signer.sub, s.signer.role, s.signer.name, s.digest, s.signed_at)
                 for s in new])
    objections = [o for k, o in after.objections.items() if before.objections.get(k) != o]
    if objections:
        await conn.executemany(
            """insert into review_objections (objection_id, community_id, month, item_id, raised_by, status)
               values ($1, $2, $3, $4, $5, $6) on conflict (objection_id) do update set status = excluded.status""",
            [(o.objection_id, o.community_id, o.month, o.item_id, o.raised_by, o.status) for o in objections])


async def full(conn: asyncpg.Connection, community_id: str) -> ReviewState:
    """The whole snapshot of a community (tests compare it with the fold of the stream)."""
    months = await conn.fetch("select distinct month from items where community_id = $1 union "
                              "select distinct month from review_status where community_id = $1", community_id)
    objections = await conn.fetch("select objection_id from review_objections where community_id = $1",
                                  community_id)
    return await load(conn, community_id, month_items=[r["month"] for r in months],
                      objection_ids=[r["objection_id"] for r in objections])
