"""Write-side state the decisions need, kept in the service's own PostgreSQL.

Updated by ``evolve`` in the same transaction as the events are appended, so a decision never
reads a lagging read model. Loaders take row locks where two commands could race (cap usage).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import asyncpg

from services.declarations.domain.bulk import Need
from services.declarations.domain.roster import OrgUnit, Subject
from shared.events import Event
from shared.events.declarations import (
    CommunityRegistered,
    NeedCompleted,
    NeedPosted,
    NeedTaken,
    OrgUnitAdded,
    PointsItem,
    SubjectCategoriesChanged,
    SubjectMovedOut,
    SubjectRegistered,
)

SCHEMA = """
create table if not exists communities (
    community_id text primary key, name text not null, county text not null
);
create table if not exists org_units (
    unit_id text primary key, community_id text not null, kind text not null, name text not null, parent_id text
);
create table if not exists subjects (
    subject_id    text primary key,
    community_id  text not null,
    kind          text not null,
    name          text not null,
    categories    text[] not null,
    gender        text,
    family_id     text,
    contact_id    text,
    units         text[] not null,
    registered_on date not null,
    moved_out_on  date
);
create index if not exists subjects_by_community on subjects (community_id, name);
create table if not exists monthly_usage (
    subject_id text not null, rule_code text not null, month text not null, points integer not null,
    primary key (subject_id, rule_code, month)
);
create table if not exists needs (
    need_id text primary key, community_id text not null, title text not null, rule_code text not null,
    quantity integer not null, status text not null, taken_by text, posted_by text not null
);
"""


def subject_from_row(r: asyncpg.Record) -> Subject:
    return Subject(r["subject_id"], r["community_id"], r["kind"], r["name"], tuple(r["categories"]),
                   r["registered_on"], r["moved_out_on"])


async def community_known(conn: asyncpg.Connection, community_id: str) -> bool:
    return bool(await conn.fetchval("select true from communities where community_id = $1", community_id))


async def subjects(conn: asyncpg.Connection, ids: Sequence[str]) -> dict[str, Subject]:
    rows = await conn.fetch("select * from subjects where subject_id = any($1::text[]) for share", list(ids))
    return {r["subject_id"]: subject_from_row(r) for r in rows}


async def subject(conn: asyncpg.Connection, subject_id: str) -> Subject | None:
    row = await conn.fetchrow("select * from subjects where subject_id = $1 for share", subject_id)
    return subject_from_row(row) if row else None


async def usage(conn: asyncpg.Connection, keys: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], int]:
    """|points| used per (subject, rule, month), each row locked until the transaction ends.

    The upsert takes the row lock even for a first item, so two concurrent items for the same
    subject and rule cannot both slip under the cap.
    """
    keys = list(dict.fromkeys(keys))  # one row may be touched once per statement
    if not keys:
        return {}
    rows = await conn.fetch(
        """insert into monthly_usage (subject_id, rule_code, month, points)
           select * , 0 from unnest($1::text[], $2::text[], $3::text[])
           on conflict (subject_id, rule_code, month) do update set points = monthly_usage.points
           returning subject_id, rule_code, month, points""",
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
    )
    return {(r["subject_id"], r["rule_code"], r["month"]): r["points"] for r in rows}


ITEM_FACTS = """
with used as (
    insert into monthly_usage (subject_id, rule_code, month, points) values ($1, $2, $3, 0)
    on conflict (subject_id, rule_code, month) do update set points = monthly_usage.points
    returning points
)
select (select points from used) as used,
       exists (select 1 from communities where community_id = $4) as community_known,
       exists (select 1 from certified_months where community_id = $4 and month = $3) as certified,
       s.*
from (select 1) as one left join subjects s on s.subject_id = $1
"""


async def item_facts(conn: asyncpg.Connection, subject_id: str, rule_code: str, month: str,
                     community_id: str) -> tuple[Subject | None, bool, bool, int]:
    """(subject, community known, month certified, |points| used) in one round trip; the usage row
    stays locked to the end of the transaction (a refused command rolls the placeholder row back)."""
    r = await conn.fetchrow(ITEM_FACTS, subject_id, rule_code, month, community_id)
    assert r is not None
    subject = subject_from_row(r) if r["subject_id"] is not None else None
    return subject, r["community_known"], r["certified"], r["used"]


async def certified(conn: asyncpg.Connection, community_id: str, month: str) -> bool:
    return bool(await conn.fetchval(
        "select true from certified_months where community_id = $1 and month = $2", community_id, month))


async def units(conn: asyncpg.Connection, community_id: str) -> dict[str, OrgUnit]:
    rows = await conn.fetch("select unit_id, community_id, kind from org_units where community_id = $1", community_id)
    return {r["unit_id"]: OrgUnit(r["unit_id"], r["community_id"], r["kind"]) for r in rows}


async def taken_ids(conn: asyncpg.Connection, ids: Iterable[str]) -> set[str]:
    rows = await conn.fetch("select subject_id from subjects where subject_id = any($1::text[])", list(ids))
    return {r["subject_id"] for r in rows}


async def ids_of_kind(conn: asyncpg.Connection, community_id: str, kind: str) -> set[str]:
    rows = await conn.fetch("select subject_id from subjects where community_id = $1 and kind = $2",
                            community_id, kind)
    return {r["subject_id"] for r in rows}


async def need(conn: asyncpg.Connection, need_id: str) -> Need | None:
    r = await conn.fetchrow("select * from needs where need_id = $1 for update", need_id)
    return Need(r["need_id"], r["community_id"], r["title"], r["rule_code"], r["quantity"], r["status"],
                r["taken_by"]) if r else None


def month_of(day: dt.date) -> str:
    return day.strftime("%Y-%m")


async def evolve(conn: asyncpg.Connection, events: Sequence[Event]) -> None:
    """Fold freshly appended events into the write-side tables (same transaction)."""
    usage_rows = []
    for ev in events:
        if isinstance(ev, PointsItem):
            usage_rows.append((ev.subject_id, ev.rule_code, month_of(ev.occurred_on), abs(ev.points)))
        elif isinstance(ev, CommunityRegistered):
            await conn.execute("insert into communities values ($1, $2, $3)", ev.community_id, ev.name, ev.county)
        elif isinstance(ev, OrgUnitAdded):
            await conn.execute("insert into org_units values ($1, $2, $3, $4, $5)",
                               ev.unit_id, ev.community_id, ev.kind, ev.name, ev.parent_id)
        elif isinstance(ev, SubjectRegistered):
            await conn.execute(
                "insert into subjects values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, null)",
                ev.subject_id, ev.community_id, ev.kind, ev.name, list(ev.categories), ev.gender, ev.family_id,
                ev.contact_id, list(ev.units), ev.registered_on)
        elif isinstance(ev, SubjectCategoriesChanged):
            await conn.execute("update subjects set categories = $2 where subject_id = $1",
                               ev.subject_id, list(ev.categories))
        elif isinstance(ev, SubjectMovedOut):
            await conn.execute("update subjects set moved_out_on = $2 where subject_id = $1",
                               ev.subject_id, ev.moved_out_on)
        elif isinstance(ev, NeedPosted):
            await conn.execute("insert into needs values ($1, $2, $3, $4, $5, 'open', null, $6)",
                               ev.need_id, ev.community_id, ev.title, ev.rule_code, ev.quantity, ev.posted_by)
        elif isinstance(ev, NeedTaken):
            await conn.execute("update needs set status = 'taken', taken_by = $2 where need_id = $1",
                               ev.need_id, ev.subject_id)
        elif isinstance(ev, NeedCompleted):
            await conn.execute("update needs set status = 'completed' where need_id = $1", ev.need_id)
    if usage_rows:
        await conn.executemany(
            """insert into monthly_usage values ($1, $2, $3, $4) on conflict (subject_id, rule_code, month)
               do update set points = monthly_usage.points + excluded.points""", usage_rows)
