"""The ledger (台账): every points item with subject, rule, points, channel, actor, evidence, status.

A projection of the declarations topic; rebuilt from the log, never written by a command.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from shared.envelope import Envelope
from shared.events.declarations import DeclarationSubmitted
from shared.projection import Projection
from shared.topics import DECLARATIONS

SCHEMA = """
create table if not exists ledger (
    item_id       text primary key,
    community_id  text not null,
    subject_id    text not null,
    category      text not null,
    rule_code     text not null,
    rule_version  integer not null,
    dimension     text not null,
    quantity      integer not null,
    points        integer not null,
    channel       text not null,
    occurred_on   date not null,
    month         text not null,
    description   text not null,
    evidence      text[] not null,
    entered_by    text not null,
    declared_by   text not null,
    status        text not null,
    recorded_at   timestamptz not null,
    event_id      uuid not null,
    stream_seq    integer not null
);
create index if not exists ledger_by_community_month on ledger (community_id, month);
create index if not exists ledger_by_subject on ledger (subject_id, month);
"""


class LedgerProjection(Projection):
    name = "ledger"
    topics = (DECLARATIONS,)
    tables = ("ledger",)
    schema = SCHEMA

    async def apply(self, conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None:
        rows = []
        for env in envelopes:
            ev = env.event
            if isinstance(ev, DeclarationSubmitted):
                rows.append((
                    ev.item_id, ev.community_id, ev.subject_id, ev.category, ev.rule_code,
                    ev.rule_version, ev.dimension, ev.quantity, ev.points, ev.channel, ev.occurred_on,
                    ev.occurred_on.strftime("%Y-%m"), ev.description, list(ev.evidence), ev.entered_by,
                    ev.declared_by, "submitted", env.time, env.id, env.sequence,
                ))
        if rows:
            await conn.executemany(
                """insert into ledger (item_id, community_id, subject_id, category, rule_code, rule_version,
                       dimension, quantity, points, channel, occurred_on, month, description, evidence,
                       entered_by, declared_by, status, recorded_at, event_id, stream_seq)
                   values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)
                   on conflict (item_id) do nothing""",
                rows,
            )
