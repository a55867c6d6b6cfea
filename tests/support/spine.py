"""A tiny event and projection used to test the spine itself (store, relay, runner)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import asyncpg

from shared.envelope import Envelope
from shared.events import Event, event
from shared.projection import Projection
from shared.topics import DECLARATIONS


@event
class Ticked(Event):
    SERVICE: ClassVar[str] = "declarations"  # consumers accept it only from the declarations source and topic
    n: int


class TickLog(Projection):
    """One row per event, with the order in which each stream's events were applied."""

    name = "ticklog"
    topics = (DECLARATIONS,)
    tables = ("ticks",)
    partition_local = True  # a stream's rows stay with its key's partition
    schema = """
    create table if not exists ticks (
        event_id  uuid not null,  -- deliberately not unique: a doubled event would show as a row
        stream_id text not null,
        seq       integer not null,
        n         integer not null,
        applied   integer not null,  -- 1, 2, 3 … per stream, in the order applied
        unique (stream_id, applied)
    );
    """

    async def apply(self, conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None:
        counts: dict[str, int] = {}
        rows = []
        for env in envelopes:
            if not isinstance(env.event, Ticked):
                continue
            if env.subject not in counts:
                counts[env.subject] = await conn.fetchval(
                    "select count(*) from ticks where stream_id = $1", env.subject)
            counts[env.subject] += 1
            rows.append((env.id, env.subject, env.sequence, env.event.n, counts[env.subject]))
        await conn.executemany("insert into ticks values ($1, $2, $3, $4, $5)", rows)
