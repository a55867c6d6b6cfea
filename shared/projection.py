"""The projection runner: Kafka -> a read model in the service's PostgreSQL, effect exactly once.

- Offsets live in ``projection_offsets``, written in the same transaction as the rows they
  produced; on assignment the consumer seeks to them (Kafka's committed offsets are not used).
- Event ids already applied are kept in ``projection_seen``: a record published twice (a relay
  that crashed between send and mark) is applied once.
- A record that cannot be decoded or applied goes to the dead-letter topic with its reason.
- ``catch_up(rebuild=True)`` empties the read model and replays from offset 0; ``until`` stops
  each partition at the first event recorded after that time (replay "as of").
- ``rebuild(..., workers=N)`` shares the partitions among N processes (one per core) for a
  projection whose partitions never touch the same rows (``partition_local``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import multiprocessing
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import asyncpg
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord

from shared.envelope import Envelope, UndecodableRecord, decode
from shared.kafka import consumer_config, producer_config
from shared.logging import get_logger
from shared.settings import Settings
from shared.topics import DEAD_LETTER, Topic

log = get_logger("projection")

SCHEMA = """
create table if not exists projection_offsets (
    projection  text not null,
    topic       text not null,
    partition   integer not null,
    next_offset bigint not null,
    primary key (projection, topic, partition)
);
create table if not exists projection_seen (
    projection text not null,
    source     text not null,
    event_id   uuid not null,
    primary key (projection, source, event_id)
);
"""

# Connection trouble is not the record's fault: let the runner stop and restart, never dead-letter.
TRANSIENT = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError, asyncio.CancelledError)


class Projection(ABC):
    """A read model. ``apply`` gets events in log order per partition and must not read the clock."""

    name: str
    topics: tuple[Topic, ...]
    tables: tuple[str, ...]  # emptied on rebuild
    schema: str  # DDL, idempotent
    # True when the rows written for one partition's events are never written for another's
    # (every key's rows stay with its partition): then partitions can be rebuilt in parallel.
    partition_local: bool = False

    @abstractmethod
    async def apply(self, conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None: ...


async def migrate(conn: asyncpg.Connection, projection: Projection) -> None:
    await conn.execute(SCHEMA)
    await conn.execute(projection.schema)


async def table_digest(conn: asyncpg.Connection, table: str, order_by: str) -> str:
    """md5 over every row in a fixed order: equal digests = byte-identical tables."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        f"select md5(coalesce(string_agg(t::text, E'\\n' order by {order_by}), '')) from {table} t"
    )


Batch = dict[TopicPartition, list[ConsumerRecord[Any, Any]]]
Prepared = tuple[
    list[tuple[ConsumerRecord[Any, Any], Envelope]],
    list[tuple[ConsumerRecord[Any, Any], str]],
    dict[TopicPartition, int],
]


def prepare(batch: Batch) -> Prepared:
    """Decode a batch (CPU only): the good envelopes, the dead records with reasons, next offsets."""
    good: list[tuple[ConsumerRecord[Any, Any], Envelope]] = []
    dead: list[tuple[ConsumerRecord[Any, Any], str]] = []
    offsets: dict[TopicPartition, int] = {}
    for tp, records in batch.items():
        for record in records:
            try:
                good.append((record, decode(record.headers, record.key, record.value)))
            except UndecodableRecord as exc:
                dead.append((record, str(exc)))
            offsets[tp] = record.offset + 1
    return good, dead, offsets


async def prepare_cooperatively(batch: Batch, chunk: int = 250) -> Prepared:
    """``prepare`` in slices, yielding to the event loop between them so the previous batch's
    SQL round trips keep moving while this one is decoded."""
    out: Prepared = ([], [], {})
    for tp, records in batch.items():
        for i in range(0, len(records), chunk):
            good, dead, offsets = prepare({tp: records[i:i + chunk]})
            out[0].extend(good)
            out[1].extend(dead)
            out[2].update(offsets)
            await asyncio.sleep(0)
    return out


async def fetch_batch(consumer: AIOKafkaConsumer, *partitions: TopicPartition, max_records: int = 5000,
                      wait_ms: int = 200, linger_s: float = 0.02) -> Batch:
    """One getmany returns only what is already fetched (often a few hundred records): keep
    collecting for a moment so one Postgres transaction covers thousands of events."""
    batch: Batch = await consumer.getmany(*partitions, timeout_ms=wait_ms, max_records=max_records)
    total = sum(len(v) for v in batch.values())
    deadline = asyncio.get_running_loop().time() + linger_s
    while batch and total < max_records and asyncio.get_running_loop().time() < deadline:
        more = await consumer.getmany(*partitions, timeout_ms=5, max_records=max_records - total)
        if not more:
            break
        for tp, records in more.items():
            batch.setdefault(tp, []).extend(records)
            total += len(records)
    return batch


def tune_gc() -> None:
    """Replaying allocates millions of short-lived objects; CPython's default GC thresholds spend
    a third of the decoding time collecting them. Fewer, larger young collections instead."""
    if gc.get_threshold()[0] < 50_000:
        gc.set_threshold(50_000, 50, 1000)
        gc.freeze()  # what exists at start-up (modules, catalogue) is never garbage: stop rescanning it


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """A replay allocates millions of objects that live for a batch or two and form almost no
    reference cycles (a few hundred per 200,000 events, measured); the cyclic GC would scan the
    live batches again and again. Pause it for the replay and collect once at the end."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.collect(0)  # the automatic collections were off, so everything made since is still young


def _record_time(record: ConsumerRecord[Any, Any]) -> dt.datetime | None:
    for k, v in record.headers or ():
        if k == "ce_time":
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                return dt.datetime.fromisoformat(v.decode())
    return None


class ProjectionRunner:
    def __init__(self, pool: asyncpg.Pool, projection: Projection, settings: Settings) -> None:
        self.pool = pool
        self.projection = projection
        self.settings = settings
        self.topic_names = [t.name(settings) for t in projection.topics]
        self.group_id = f"{settings.topic_namespace}.projection.{projection.name}"
        self.consumer: AIOKafkaConsumer | None = None
        self.dead_letter_producer: AIOKafkaProducer | None = None
        self.applied = 0
        self.dead_lettered = 0
        self.ready = asyncio.Event()
        self._pending: asyncio.Task[None] | None = None
        # During a rebuild the read model starts empty, so dedup can be decided in memory and
        # projection_seen filled by COPY (much faster than insert … on conflict … returning).
        self._rebuild_seen: set[tuple[str, Any]] | None = None

    # ---- offsets -------------------------------------------------------------------------
    async def stored_offsets(self) -> dict[TopicPartition, int]:
        rows = await self.pool.fetch(
            "select topic, partition, next_offset from projection_offsets where projection = $1",
            self.projection.name,
        )
        return {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def seek_to_stored(self, consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition]) -> None:
        stored = await self.stored_offsets()
        for tp in partitions:
            if tp in stored:
                consumer.seek(tp, stored[tp])
            else:
                await consumer.seek_to_beginning(tp)

    async def lag(self) -> int:
        consumer = self.consumer
        if consumer is None:
            return -1
        total = 0
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is not None:
                total += max(0, high - await consumer.position(tp))
        return total

    # ---- one batch -----------------------------------------------------------------------
    async def process(self, batch: Batch, *, dead_letter: bool = True) -> None:
        await self.commit(prepare(batch), dead_letter=dead_letter)

    async def process_pipelined(self, batch: Batch, *, dead_letter: bool = True) -> None:
        """Decode this batch while the previous one is still being written (order is kept:
        commits run one after another)."""
        prepared = await prepare_cooperatively(batch)
        await self.flush()
        self._pending = asyncio.create_task(self.commit(prepared, dead_letter=dead_letter))

    async def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            await pending

    async def commit(self, prepared: Prepared, *, dead_letter: bool = True) -> None:
        good, dead, offsets = prepared
        dead = list(dead)
        async with self.pool.acquire() as conn, conn.transaction():
            # A read model is rebuildable and its offsets commit with its rows: losing the last
            # transactions in a database crash only means consuming them again.
            await conn.execute("set local synchronous_commit = off")
            fresh = await self._unseen(conn, good)
            if fresh:
                try:
                    async with conn.transaction():
                        await self.projection.apply(conn, [env for _, env in fresh])
                except TRANSIENT:
                    raise
                except Exception:
                    # Find the culprit(s): apply one at a time, each in its own savepoint.
                    for record, env in fresh:
                        try:
                            async with conn.transaction():
                                await self.projection.apply(conn, [env])
                        except TRANSIENT:
                            raise
                        except Exception as exc:
                            dead.append((record, f"cannot apply {env.type} {env.id}: {exc!r}"))
            await conn.execute(
                """insert into projection_offsets (projection, topic, partition, next_offset)
                   select $1, t, p, o from unnest($2::text[], $3::int[], $4::bigint[]) as u(t, p, o)
                   on conflict (projection, topic, partition) do update set next_offset = excluded.next_offset""",
                self.projection.name, [tp.topic for tp in offsets], [tp.partition for tp in offsets],
                list(offsets.values()),
            )
            if dead:
                self.dead_lettered += len(dead)
                if dead_letter:
                    await self._dead_letter(dead)  # before the commit: a crash re-sends, never loses
                for record, reason in dead:
                    log.warning("projection.dead_letter", projection=self.projection.name, topic=record.topic,
                                partition=record.partition, offset=record.offset, reason=reason)
            self.applied += len(fresh)

    async def _unseen(
        self, conn: asyncpg.Connection, good: list[tuple[ConsumerRecord[Any, Any], Envelope]]
    ) -> list[tuple[ConsumerRecord[Any, Any], Envelope]]:
        if not good:
            return []
        if self._rebuild_seen is not None:
            seen, fresh = self._rebuild_seen, []
            for record, env in good:
                if (env.source, env.id.int) not in seen:  # .int: UUID.__hash__ is a Python-level call
                    seen.add((env.source, env.id.int))
                    fresh.append((record, env))
            by_source: dict[str, list[Any]] = {}
            for _, env in fresh:
                by_source.setdefault(env.source, []).append(env.id)
            for source, ids in by_source.items():  # one uuid[] parameter: far cheaper than a row per id
                await conn.execute("insert into projection_seen select $1, $2, unnest($3::uuid[])",
                                   self.projection.name, source, ids)
            return fresh
        new = await conn.fetch(
            """insert into projection_seen (projection, source, event_id)
               select $1, s, e from unnest($2::text[], $3::uuid[]) as u(s, e)
               on conflict do nothing returning source, event_id""",
            self.projection.name, [env.source for _, env in good], [env.id for _, env in good],
        )
        fresh_ids = {(r["source"], r["event_id"]) for r in new}
        out = []
        for record, env in good:
            if (env.source, env.id) in fresh_ids:
                fresh_ids.discard((env.source, env.id))  # a duplicate inside one batch counts once
                out.append((record, env))
        return out

    async def _dead_letter(self, dead: list[tuple[ConsumerRecord[Any, Any], str]]) -> None:
        if self.dead_letter_producer is None:
            producer = AIOKafkaProducer(**producer_config(self.settings))
            await producer.start()
            self.dead_letter_producer = producer
        topic = DEAD_LETTER.name(self.settings)
        futures = []
        for record, reason in dead:
            headers = [(k, v) for k, v in (record.headers or ()) if isinstance(v, bytes)]
            headers += [
                ("dlq_reason", reason.encode()),
                ("dlq_consumer", self.projection.name.encode()),
                ("dlq_topic", record.topic.encode()),
                ("dlq_partition", str(record.partition).encode()),
                ("dlq_offset", str(record.offset).encode()),
            ]
            futures.append(await self.dead_letter_producer.send(
                topic, value=record.value, key=record.key, headers=headers))
        await asyncio.gather(*futures)

    # ---- live ----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        tune_gc()
        runner = self

        class SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                await runner.flush()  # offsets go to Postgres with the rows; nothing else to hand over

            async def on_partitions_assigned(self, assigned: Any) -> None:
                assert runner.consumer is not None
                await runner.seek_to_stored(runner.consumer, assigned)
                runner.ready.set()

        consumer = AIOKafkaConsumer(**consumer_config(self.settings), group_id=self.group_id)
        consumer.subscribe(self.topic_names, listener=SeekToStored())
        self.consumer = consumer
        await consumer.start()
        log.info("projection.started", projection=self.projection.name, topics=self.topic_names)
        try:
            while not stop.is_set():
                batch = await fetch_batch(consumer)
                if batch:
                    await self.process_pipelined(batch)
                else:
                    await self.flush()
            await self.flush()
        finally:
            self.consumer = None
            await consumer.stop()
            await self.close()

    async def close(self) -> None:
        if self.dead_letter_producer is not None:
            await self.dead_letter_producer.stop()
            self.dead_letter_producer = None

    # ---- rebuild and replay "as of" ------------------------------------------------------
    async def reset(self) -> None:
        """Empty the read model, its offsets and its seen ids (the start of a rebuild)."""
        async with self.pool.acquire() as conn, conn.transaction():
            for table in self.projection.tables:
                await conn.execute(f"truncate {table}")
            await conn.execute("delete from projection_offsets where projection = $1", self.projection.name)
            await conn.execute("delete from projection_seen where projection = $1", self.projection.name)

    async def catch_up(self, *, rebuild: bool = False, until: dt.datetime | None = None,
                       share: Collection[TopicPartition] | None = None, fresh: bool = False) -> int:
        """Read every partition (or the ``share`` given) up to its end offset at the start of the
        call; returns events applied. ``fresh``: the read model was just reset (dedup in memory)."""
        with gc_paused():
            return await self._catch_up(rebuild, until, share, fresh)

    async def _catch_up(self, rebuild: bool, until: dt.datetime | None, share: Collection[TopicPartition] | None,
                        fresh: bool) -> int:
        consumer = AIOKafkaConsumer(**consumer_config(self.settings), group_id=None)
        await consumer.start()
        start_applied = self.applied
        try:
            tps = await partitions_of(consumer, self.topic_names)
            if share is not None:
                tps = [tp for tp in tps if tp in share]
            consumer.assign(tps)
            end = await consumer.end_offsets(tps)
            if rebuild:
                await self.reset()
            if rebuild or fresh:
                self._rebuild_seen = set()  # duplicates share their key, so their partition: all in view
            await self.seek_to_stored(consumer, tps)
            remaining = {tp for tp in tps if await consumer.position(tp) < end[tp]}
            while remaining:
                batch = await fetch_batch(consumer, *remaining, wait_ms=500, max_records=20_000)
                todo: dict[TopicPartition, list[ConsumerRecord[Any, Any]]] = {}
                for tp, records in batch.items():
                    keep = []
                    for record in records:
                        if record.offset >= end[tp]:
                            break
                        when = None if until is None else _record_time(record)
                        if until is not None and when is not None and when > until:
                            remaining.discard(tp)
                            break
                        keep.append(record)
                    if keep:
                        todo[tp] = keep
                        if keep[-1].offset + 1 >= end[tp]:
                            remaining.discard(tp)
                if todo:
                    await self.process_pipelined(todo, dead_letter=not (rebuild or fresh))
            await self.flush()
        finally:
            self._rebuild_seen = None
            await consumer.stop()
            await self.close()
        return self.applied - start_applied


async def rebuild(pool: asyncpg.Pool, projection: Projection, settings: Settings, *,
                  until: dt.datetime | None = None, workers: int = 1) -> int:
    """Empty the projection and replay the log into it; returns events applied.

    With ``workers`` > 1 and a partition-local projection, the partitions are shared out: this
    process replays the first share while worker processes replay the others."""
    runner = ProjectionRunner(pool, projection, settings)
    if workers <= 1 or not projection.partition_local:
        return await runner.catch_up(rebuild=True, until=until)
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, runner.topic_names)
    finally:
        await consumer.stop()
    shares = [tps[i::workers] for i in range(workers) if tps[i::workers]]
    if len(shares) < 2:  # a single partition: nothing to share out
        return await runner.catch_up(rebuild=True, until=until)
    await runner.reset()
    spec = f"{type(projection).__module__}:{type(projection).__qualname__}"
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(len(shares) - 1, mp_context=multiprocessing.get_context("spawn")) as executor:
        others = [loop.run_in_executor(executor, _replay_share, spec, settings, [(tp.topic, tp.partition) for tp in s],
                                       until) for s in shares[1:]]  # fmt: skip
        here = await runner.catch_up(share=shares[0], fresh=True, until=until)
        return here + sum(await asyncio.gather(*others))


def _replay_share(spec: str, settings: Settings, share: list[tuple[str, int]], until: dt.datetime | None) -> int:
    """Worker process of ``rebuild``: replay one share of the partitions into the emptied projection."""
    from shared.events import load_catalogue

    load_catalogue()

    async def replay() -> int:
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
        try:
            runner = ProjectionRunner(pool, load_projection(spec), settings)
            return await runner.catch_up(share={TopicPartition(t, p) for t, p in share}, fresh=True, until=until)
        finally:
            await pool.close()

    return uvloop.run(replay())  # the loop the services run on (uvicorn with uvloop)


async def partitions_of(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[TopicPartition]:
    cluster = await consumer._client.fetch_all_metadata()  # the public partitions_for_topic sees subscriptions only
    out = []
    for topic in topics:
        parts = cluster.partitions_for_topic(topic)
        if not parts:
            raise RuntimeError(f"topic {topic} does not exist (run: python -m shared.topics create)")
        out += [TopicPartition(topic, p) for p in sorted(parts)]
    return out


def load_projection(spec: str) -> Projection:
    """'package.module:ClassName' -> an instance."""
    import importlib

    module_name, _, cls_name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"no projection {spec!r} (expected module:Class): {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Projection)):
        raise ValueError(f"{spec!r} is not a Projection")
    return cls()


async def main(argv: Sequence[str]) -> None:
    """python -m shared.projection run|rebuild|as-of <module:Class> [ISO time] [--workers N]"""
    import argparse
    import os
    import signal

    from shared.events import load_catalogue
    from shared.logging import configure_logging
    from shared.settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m shared.projection", description="Run or rebuild a projection.")
    parser.add_argument("command", choices=("run", "rebuild", "as-of"))
    parser.add_argument("projection", help="module:Class, e.g. services.declarations.ledger:LedgerProjection")
    parser.add_argument("time", nargs="?", type=dt.datetime.fromisoformat,
                        help="as-of: replay up to this ISO time (with its time zone)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="rebuild/as-of: processes sharing the partitions (default: one per core)")
    args = parser.parse_args(argv)
    if args.command == "as-of" and (args.time is None or args.time.tzinfo is None):
        parser.error("as-of needs an ISO time with its time zone, e.g. 2026-11-30T23:59:59+08:00")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    load_catalogue()
    settings = get_settings()
    try:
        projection = load_projection(args.projection)
    except ValueError as exc:
        parser.error(str(exc))
    configure_logging(f"{settings.service_name}-projection-{projection.name}")
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    try:
        async with pool.acquire() as conn:
            await migrate(conn, projection)
        if args.command == "run":
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await ProjectionRunner(pool, projection, settings).run(stop)
        else:
            print(await rebuild(pool, projection, settings, until=args.time, workers=args.workers))
    finally:
        await pool.close()


if __name__ == "__main__":
    import sys

    from shared import projection as this  # not __main__: worker processes must find the same classes

    uvloop.run(this.main(sys.argv[1:]))  # the loop the services run on (uvicorn with uvloop)
