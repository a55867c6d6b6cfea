"""The review service's copy of every points item (and subject and community names), from the declarations topic.

The review service never reads another service's tables: it learns items from the log.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from shared.envelope import Envelope
from shared.events.declarations import CommunityRegistered, DeclarationSubmitted, DeductionRecorded, SubjectRegistered
from shared.projection import Projection
from shared.topics import DECLARATIONS

SCHEMA = """
create table if not exists items (
    item_id      text primary key,
    community_id text not null,
    month        text not null,
    occurred_on  date not null,
    subject_id   text not null,
    category     text not null,
    dimension    text not null,
    rule_code    text not null,
    points       integer not null,
    kind         text not null,  -- declaration or deduction
    channel      text not null,
    description  text not null,
    entered_by   text not null,
    declared_by  text not null,
    recorded_at  timestamptz not null
);
create index if not exists items_by_month on items (community_id, month);
create table if not exists subjects (
    subject_id text primary key, community_id text not null, name text not null
);
create table if not exists communities (community_id text primary key, name text not null);
-- items no review decision has touched yet: the late-item policy looks here, not at every item
create table if not exists review_waiting (
    item_id text primary key, community_id text not null, month text not null
);
"""

INSERT = """insert into items (item_id, community_id, month, occurred_on, subject_id, category, dimension, rule_code,
                               points, kind, channel, description, entered_by, declared_by, recorded_at)
            values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) on conflict (item_id) do nothing"""


class ItemsProjection(Projection):
    name = "review_items"
    topics = (DECLARATIONS,)
    tables = ("items", "subjects", "communities", "review_waiting")
    # review_waiting is a work queue: the late-item policy takes rows off it as items are decided, so
    # a replay refills it and the auditor does not compare it row by row with the live one
    queues = ("review_waiting",)
    schema = SCHEMA

    async def apply(self, conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None:
        rows = []
        for env in envelopes:
            ev = env.event
            if isinstance(ev, DeclarationSubmitted | DeductionRecorded):
                kind = "deduction" if isinstance(ev, DeductionRecorded) else "declaration"
                description = ev.reason if isinstance(ev, DeductionRecorded) and not ev.description else ev.description
                rows.append((ev.item_id, ev.community_id, ev.occurred_on.strftime("%Y-%m"), ev.occurred_on,
                             ev.subject_id, ev.category, ev.dimension, ev.rule_code, ev.points, kind, ev.channel,
                             description, ev.entered_by, ev.declared_by, env.time))
            elif isinstance(ev, SubjectRegistered):
                await conn.execute("""insert into subjects values ($1, $2, $3)
                                      on conflict (subject_id) do update set name = excluded.name""",
                                   ev.subject_id, ev.community_id, ev.name)
            elif isinstance(ev, CommunityRegistered):
                await conn.execute("""insert into communities values ($1, $2)
                                      on conflict (community_id) do update set name = excluded.name""",
                                   ev.community_id, ev.name)
        if rows:
            await conn.executemany(INSERT, rows)
            await conn.executemany("insert into review_waiting values ($1, $2, $3) on conflict do nothing",
                                   [(r[0], r[1], r[2]) for r in rows])
