"""Write-side state in the service's own PostgreSQL: snapshots of the aggregates at their stream version.

``load`` reads what a batch of commands wants into a ``State``; ``save`` writes back the
aggregates the pure ``evolve`` produced, in the same transaction as the append. The snapshot is a
cache of the fold of each stream (a test holds it to ``fold(store.load(stream))``); it is never the
concurrency guard: the append at the loaded version is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import asyncpg

from services.declarations.domain.catalogue import RuleCatalogue
from services.declarations.domain.decide import State, Wants
from services.declarations.domain.state import Aggregate, Catalogue, Community, Need, OrgUnit, Subject

SCHEMA = """
create table if not exists communities (
    community_id text primary key, name text not null, county text not null, version integer not null default 0
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
    moved_out_on  date,
    version       integer not null default 0
);
create index if not exists subjects_by_community on subjects (community_id, name);
create table if not exists monthly_usage (
    subject_id text not null, rule_code text not null, month text not null, points integer not null,
    primary key (subject_id, rule_code, month)
);
create table if not exists needs (
    need_id text primary key, community_id text not null, title text not null, rule_code text not null,
    quantity integer not null, status text not null, taken_by text, posted_by text not null,
    version integer not null default 0
);
do $$ begin  -- snapshots written before they carried their stream version: take it from the log once
    if not exists (select 1 from information_schema.columns where table_schema = current_schema()
                   and table_name = 'subjects' and column_name = 'version') then
        alter table communities add column if not exists version integer not null default 0;
        alter table subjects add column version integer not null default 0;
        alter table needs add column if not exists version integer not null default 0;
        update subjects s set version = e.v from (select stream_id, max(version) v from events group by stream_id) e
            where e.stream_id = 'subject-' || s.subject_id;
        update communities c set version = e.v from (select stream_id, max(version) v from events group by stream_id) e
            where e.stream_id = 'community-' || c.community_id;
        update needs n set version = e.v from (select stream_id, max(version) v from events group by stream_id) e
            where e.stream_id = 'need-' || n.need_id;
    end if;
end $$;
-- the hash of the stream's last event: the next append chains from it without reading the log
alter table communities add column if not exists head_hash text;
alter table subjects add column if not exists head_hash text;
alter table needs add column if not exists head_hash text;
"""

Heads = dict[str, tuple[int, str]]  # stream -> (version, hash of its last event), as the snapshots know them


def subject_from_row(r: asyncpg.Record, usage: Mapping[tuple[str, str], int] | None = None) -> Subject:
    return Subject(r["subject_id"], r["community_id"], r["kind"], r["name"], tuple(r["categories"]),
                   r["registered_on"], r["moved_out_on"], r["gender"], r["family_id"], r["contact_id"],
                   tuple(r["units"]), dict(usage or {}), r["version"])


async def load(conn: asyncpg.Connection, w: Wants, catalogue: RuleCatalogue,
               published: Catalogue) -> tuple[State, Heads]:
    """The snapshots ``w`` names, as they are now (no locks: the append at their version is the guard),
    and the heads of their streams."""
    heads: Heads = {}

    def head(stream: str, r: asyncpg.Record) -> None:
        if r["head_hash"] is not None:
            heads[stream] = (r["version"], r["head_hash"])

    communities: dict[str, Community] = {}
    if w.communities:
        for r in await conn.fetch("select * from communities where community_id = any($1::text[])",
                                  list(w.communities)):
            communities[r["community_id"]] = Community(r["community_id"], r["name"], r["county"], {}, r["version"])
            head(f"community-{r['community_id']}", r)
    if w.units and communities:
        rows = await conn.fetch("select * from org_units where community_id = any($1::text[])", list(communities))
        units: dict[str, dict[str, OrgUnit]] = {}
        for r in rows:
            units.setdefault(r["community_id"], {})[r["unit_id"]] = OrgUnit(
                r["unit_id"], r["community_id"], r["kind"], r["name"], r["parent_id"])
        communities = {c: Community(x.community_id, x.name, x.county, units.get(c, {}), x.version)
                       for c, x in communities.items()}
    subjects: dict[str, Subject] = {}
    if w.subjects:
        usage: dict[str, dict[tuple[str, str], int]] = {}
        if w.usage:
            keys = sorted(w.usage)
            for r in await conn.fetch(
                    """select u.* from monthly_usage u join unnest($1::text[], $2::text[], $3::text[]) k(s, r, m)
                       on u.subject_id = k.s and u.rule_code = k.r and u.month = k.m""",
                    [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]):
                usage.setdefault(r["subject_id"], {})[(r["rule_code"], r["month"])] = r["points"]
        for r in await conn.fetch("select * from subjects where subject_id = any($1::text[])", list(w.subjects)):
            subjects[r["subject_id"]] = subject_from_row(r, usage.get(r["subject_id"]))
            head(f"subject-{r['subject_id']}", r)
    needs: dict[str, Need] = {}
    if w.needs:
        for r in await conn.fetch("select * from needs where need_id = any($1::text[])", list(w.needs)):
            needs[r["need_id"]] = Need(r["need_id"], r["community_id"], r["title"], r["rule_code"], r["quantity"],
                                       r["status"], r["taken_by"], r["posted_by"], r["version"])
            head(f"need-{r['need_id']}", r)
    certified: frozenset[tuple[str, str]] = frozenset()
    if w.certified:
        pairs = sorted(w.certified)
        certified = frozenset((r["community_id"], r["month"]) for r in await conn.fetch(
            """select c.community_id, c.month from certified_months c
               join unnest($1::text[], $2::text[]) k(c, m) on c.community_id = k.c and c.month = k.m""",
            [p[0] for p in pairs], [p[1] for p in pairs]))
    rosters: dict[str, dict[str, str]] = {}
    if w.rosters:
        for r in await conn.fetch("select community_id, subject_id, kind from subjects "
                                  "where community_id = any($1::text[])", list(w.rosters)):
            rosters.setdefault(r["community_id"], {})[r["subject_id"]] = r["kind"]
    unit_owners: dict[str, str] = {}
    if w.unit_ids:
        unit_owners = {r["unit_id"]: r["community_id"] for r in await conn.fetch(
            "select unit_id, community_id from org_units where unit_id = any($1::text[])", list(w.unit_ids))}
    return State(catalogue, communities, subjects, needs, certified, rosters, published, unit_owners), heads


async def save(conn: asyncpg.Connection, before: Mapping[str, Aggregate | None],
               after: Mapping[str, Aggregate], hashes: Mapping[str, str]) -> None:
    """Write the aggregates that changed (same transaction as their events); ``hashes``: the hash of
    each stream's last event now."""
    subjects, bumps, usage, communities, units, needs = [], [], [], [], [], []
    for stream, new in after.items():
        old = before.get(stream)
        if isinstance(new, Subject):
            if isinstance(old, Subject) and replace(old, usage=new.usage, version=new.version) == new:
                bumps.append((new.subject_id, new.version, hashes.get(stream)))  # points items only: fields kept
            else:
                subjects.append((new.subject_id, new.community_id, new.kind, new.name, list(new.categories),
                                 new.gender, new.family_id, new.contact_id, list(new.units), new.registered_on,
                                 new.moved_out_on, new.version, hashes.get(stream)))
            old_usage = old.usage if isinstance(old, Subject) else {}
            usage += [(new.subject_id, rule, month, points) for (rule, month), points in new.usage.items()
                      if old_usage.get((rule, month)) != points]
        elif isinstance(new, Community):
            communities.append((new.community_id, new.name, new.county, new.version, hashes.get(stream)))
            old_units = old.units if isinstance(old, Community) else {}
            units += [(u.unit_id, u.community_id, u.kind, u.name, u.parent_id) for u in new.units.values()
                      if u.unit_id not in old_units]
        elif isinstance(new, Need):
            needs.append((new.need_id, new.community_id, new.title, new.rule_code, new.quantity, new.status,
                          new.taken_by, new.posted_by, new.version, hashes.get(stream)))
    if communities:
        await conn.executemany(
            """insert into communities (community_id, name, county, version, head_hash) values ($1, $2, $3, $4, $5)
               on conflict (community_id) do update set name = excluded.name, county = excluded.county,
               version = excluded.version, head_hash = excluded.head_hash""", communities)
    if units:
        await conn.executemany("insert into org_units values ($1, $2, $3, $4, $5)", units)
    if subjects:
        subjects.sort(key=lambda row: str(row[0]))
        await conn.executemany(
            """insert into subjects (subject_id, community_id, kind, name, categories, gender, family_id, contact_id,
                                    units, registered_on, moved_out_on, version, head_hash)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
               on conflict (subject_id) do update set community_id = excluded.community_id, kind = excluded.kind,
                   name = excluded.name, categories = excluded.categories, gender = excluded.gender,
                   family_id = excluded.family_id, contact_id = excluded.contact_id, units = excluded.units,
                   registered_on = excluded.registered_on, moved_out_on = excluded.moved_out_on,
                   version = excluded.version, head_hash = excluded.head_hash""", subjects)
    if bumps:
        bumps.sort()  # one lock order for every transaction
        await conn.execute(
            """update subjects s set version = u.v, head_hash = u.h from unnest($1::text[], $2::int[], $3::text[])
               as u(id, v, h) where s.subject_id = u.id""", *_columns(bumps, 3))
    if usage:
        usage.sort()  # one lock order for every transaction
        # the one place monthly usage is written: the value evolve computed, not an increment
        await conn.execute(
            """insert into monthly_usage select * from unnest($1::text[], $2::text[], $3::text[], $4::int[])
               on conflict (subject_id, rule_code, month) do update set points = excluded.points""",
            *_columns(usage, 4))
    if needs:
        await conn.executemany(
            """insert into needs (need_id, community_id, title, rule_code, quantity, status, taken_by, posted_by,
                                 version, head_hash) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
               on conflict (need_id) do update set status = excluded.status, taken_by = excluded.taken_by,
               version = excluded.version, head_hash = excluded.head_hash""", needs)


def _columns(rows: Sequence[tuple[object, ...]], n: int) -> list[list[object]]:
    """Rows to column lists for ``unnest``."""
    return [[r[i] for r in rows] for i in range(n)]
