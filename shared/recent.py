"""The runner's second guard: the event ids of each partition's last ``window`` offsets.

A relay that crashed between send and mark publishes an event again, a few relay batches later, on
the same partition (same key). The runner applies such a copy once if it lands within ``window``
offsets of the first: the ids of those offsets are held in memory by the partition's reader and
stored with every batch in ``projection_recent``, one row per partition, batch and source (the ids
as one array: a row per event cost a county-size consumer ~34 us per record in index upkeep).

The memory of a partition is good only as long as nobody else wrote it: it is kept with the
partition's stored offset and the live generation it was read at, and read again from
``projection_recent`` (under the partition's row lock) when either differs from what the transaction
finds. A replay into a scratch schema is the only writer of its partitions and never reads it back.

A row is dropped once its batch ended ``window`` offsets behind the stored offset, and a batch
stores only the ids within ``window`` of its end: a partition holds fewer than ``2 * window`` ids,
and a copy within ``window`` offsets of its first is always caught (the first's row is not dropped
before the copy's batch reads the window; a first further back than ``window`` from its own batch's
end is further than that from any later copy).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from shared.envelope import Envelope

SCHEMA = """
create table if not exists projection_recent (
    projection  text not null,
    topic       text not null,
    partition   integer not null,
    next_offset bigint not null,  -- the batch's end: every id in the row is of an offset below it
    source      text not null,
    event_ids   uuid[] not null,
    primary key (projection, topic, partition, next_offset, source)
);
do $$ begin  -- the store of one row per event it replaces: its windows carried over, one row per source
    if to_regclass('projection_dedup') is not null then
        insert into projection_recent
        select projection, topic, partition, max(event_offset) + 1, source, array_agg(event_id order by event_offset)
        from projection_dedup group by projection, topic, partition, source on conflict do nothing;
        drop table projection_dedup;
    end if;
end $$;
"""

Good = list[tuple[ConsumerRecord[Any, Any], Envelope]]
Key = tuple[str, int]  # (source, event id as an int: UUID.__hash__ is a Python-level call)


@dataclass
class Window:
    """One partition's ids, as stored up to ``next_offset`` in ``generation``."""

    generation: int
    next_offset: int
    held: dict[Key, int] = field(default_factory=dict)  # id -> end of the batch that holds it
    batches: collections.deque[tuple[int, list[Key]]] = field(default_factory=collections.deque)

    def add(self, end: int, keys: list[Key]) -> None:
        self.batches.append((end, keys))
        for key in keys:
            self.held[key] = end

    def advance(self, next_offset: int, size: int) -> None:
        self.next_offset = next_offset
        while self.batches and self.batches[0][0] <= next_offset - size:
            end, keys = self.batches.popleft()
            for key in keys:
                if self.held.get(key) == end:  # not held again by a later batch
                    del self.held[key]


@dataclass
class Fresh:
    """A batch through the guard: the records to apply, and their ids per partition in offset order."""

    good: Good = field(default_factory=list)
    keys: dict[TopicPartition, list[tuple[int, Key, Any]]] = field(default_factory=dict)  # (offset, key, id)

    def __len__(self) -> int:
        return len(self.good)


class RecentIds:
    """The windows of the partitions a runner reads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.windows: dict[TopicPartition, Window] = {}

    def current(self, tp: TopicPartition, generation: int, stored: int) -> bool:
        """True when this partition's window is what the store holds (nobody else wrote since)."""
        window = self.windows.get(tp)
        return window is not None and (window.generation, window.next_offset) == (generation, stored)

    def start(self, tps: Iterable[TopicPartition], generation: int) -> None:
        """Empty windows for a replay into an empty schema: it is their only writer."""
        for tp in tps:
            self.windows[tp] = Window(generation, 0)

    async def load(self, conn: asyncpg.Connection, projection: str, generation: int,
                   stored: dict[TopicPartition, int]) -> None:
        """Read these partitions' windows from ``projection_recent`` (the caller holds their rows locked)."""
        rows = await conn.fetch(
            """select r.topic, r.partition, r.next_offset, r.source, r.event_ids from projection_recent r
               join unnest($2::text[], $3::int[]) as u(t, p) on r.topic = u.t and r.partition = u.p
               where r.projection = $1 order by r.next_offset""",
            projection, [tp.topic for tp in stored], [tp.partition for tp in stored])
        for tp, offset in stored.items():
            self.windows[tp] = Window(generation, offset)
        for r in rows:
            window = self.windows[TopicPartition(r["topic"], r["partition"])]
            window.add(r["next_offset"], [(r["source"], u.int) for u in r["event_ids"]])
        for tp, window in self.windows.items():
            if tp in stored:
                window.advance(window.next_offset, self.size)

    def fresh(self, good: Good) -> Fresh:
        """The records whose ids are in no window (nor earlier in this batch)."""
        out = Fresh()
        windows = self.windows
        seen_in: dict[TopicPartition, set[Key]] = {}
        last: tuple[str, int] | None = None
        held: dict[Key, int] = {}
        seen: set[Key] = set()
        mine: list[tuple[int, Key, Any]] = []
        for record, env in good:
            if (record.topic, record.partition) != last:  # records come partition by partition
                last = (record.topic, record.partition)
                tp = TopicPartition(*last)
                held, seen = windows[tp].held, seen_in.setdefault(tp, set())
                mine = out.keys.setdefault(tp, [])
            key = (env.source, env.id.int)
            if key in held or key in seen:
                continue
            seen.add(key)
            out.good.append((record, env))
            mine.append((record.offset, key, env.id))
        return out

    def rows(self, projection: str, fresh: Fresh, offsets: dict[TopicPartition, int],
             replay_ends: dict[TopicPartition, int] | None = None) -> list[tuple[Any, ...]]:
        """``projection_recent`` rows for these records: per partition and source, those within the
        window of the batch's end (in a replay, only those within the window of the replay's end: the
        store it hands to the live runner)."""
        out = []
        for tp, entries in fresh.keys.items():
            floor = (offsets[tp] if replay_ends is None else replay_ends.get(tp, 0)) - self.size
            by: dict[str, list[Any]] = {}
            for offset, (source, _), event_id in entries:
                if offset >= floor:
                    by.setdefault(source, []).append(event_id)
            out += [(projection, tp.topic, tp.partition, offsets[tp], source, ids) for source, ids in by.items()]
        return out

    def extend(self, fresh: Fresh, offsets: dict[TopicPartition, int]) -> None:
        """After the batch committed: its ids join their windows, which move to its offsets."""
        for tp, next_offset in offsets.items():
            window = self.windows.get(tp)
            if window is None:
                continue
            floor = next_offset - self.size  # as stored (``rows``)
            keys = [key for offset, key, _ in fresh.keys.get(tp, ()) if offset >= floor]
            if keys:
                window.add(next_offset, keys)
            window.advance(next_offset, self.size)

    def forget(self, tps: Sequence[TopicPartition] | None = None) -> None:
        for tp in list(self.windows) if tps is None else tps:
            self.windows.pop(tp, None)


async def store(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        await conn.executemany("insert into projection_recent values ($1, $2, $3, $4, $5, $6)", rows)


async def trim(conn: asyncpg.Connection, projection: str, offsets: dict[TopicPartition, int], size: int) -> None:
    """Drop the rows of batches that ended ``size`` offsets behind the partitions' new stored offsets
    (one range of the primary key per partition)."""
    if offsets:
        await conn.executemany(
            "delete from projection_recent where projection = $1 and topic = $2 and partition = $3 "
            "and next_offset <= $4",
            [(projection, tp.topic, tp.partition, o - size) for tp, o in offsets.items()])
