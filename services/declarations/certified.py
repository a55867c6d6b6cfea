"""Months the leading group has certified, per community: a projection of the review topic.

Intake refuses items for a certified month (domain: late items go through a supervisor's
correction). Only ``MonthCertified`` matters here; every other review event is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from shared.envelope import Envelope
from shared.events.review import MonthCertified
from shared.projection import Projection
from shared.topics import REVIEW

SCHEMA = """
create table if not exists certified_months (
    community_id text not null,
    month        text not null,
    event_id     uuid not null,
    primary key (community_id, month)
);
"""


class CertifiedMonths(Projection):
    name = "certified_months"
    topics = (REVIEW,)
    reads = (MonthCertified,)  # a certification's awards and the month's decisions are passed over undecoded
    tables = ("certified_months",)
    schema = SCHEMA

    async def apply(self, conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None:
        rows = [(env.event.community_id, env.event.month, env.id)
                for env in envelopes if isinstance(env.event, MonthCertified)]
        if rows:
            await conn.executemany(
                "insert into certified_months values ($1, $2, $3) on conflict (community_id, month) do nothing", rows)
