"""The runner resumes exactly at its stored offsets, never moves them back, retries what is
transient and keeps its dedup store within its window."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Sequence

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared import replay
from shared.envelope import Envelope, encode_body, headers, source_for
from shared.kafka import client_config, consumer_config
from shared.projection import ProjectionRunner, partitions_of
from shared.relay import Relay
from shared.settings import Settings
from shared.store import EventStore, Recorded
from shared.topics import DECLARATIONS
from tests.integration.test_spine import T0, given_a_store, wait_for
from tests.support.spine import Ticked, TickLog

pytestmark = pytest.mark.integration

STREAMS, BURST = 100, 20  # a burst: 20 events on each of 100 streams = 2,000 events


class SlowTickLog(TickLog):
    """TickLog taking a moment per transaction, with a small dedup window: restarts land mid-stream
    and the window is reached."""

    dedup_window = 120

    async def apply(self, conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None:
        await asyncio.sleep(0.02)
        await super().apply(conn, envelopes)


async def append_burst(pool: asyncpg.Pool, store: EventStore, burst: int) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for s in range(STREAMS):
            start = burst * BURST
            await store.append(conn, f"tick-{s}", start, [Ticked(n=start + i + 1) for i in range(BURST)],
                               key=f"tick-{s}", recorded=Recorded(actor="test", time=T0 + dt.timedelta(seconds=burst),
                                                                  correlation_id=uuid.uuid4()))


async def stored(pool: asyncpg.Pool, name: str) -> dict[tuple[str, int], int]:
    rows = await pool.fetch("select topic, partition, next_offset from projection_offsets where projection = $1", name)
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def end_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [DECLARATIONS.name(settings)])
        return {(tp.topic, tp.partition): o for tp, o in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def test_a_runner_restarted_5_times_mid_stream_fetches_exactly_its_lag(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    store = await given_a_store(pool, settings)
    projection = SlowTickLog()
    stop_relay = asyncio.Event()
    relay = asyncio.create_task(Relay(pool, settings, source_for("declarations", settings)).run(stop_relay))
    decreases: list[str] = []
    sampling = asyncio.Event()

    async def watch_offsets() -> None:  # no stored offset may ever decrease
        last: dict[tuple[str, int], int] = {}
        while not sampling.is_set():
            for tp, offset in (await stored(pool, projection.name)).items():
                if offset < last.get(tp, 0):
                    decreases.append(f"{tp}: {last[tp]} -> {offset}")
                last[tp] = offset
            await asyncio.sleep(0.01)

    def start() -> tuple[ProjectionRunner, asyncio.Task[None], asyncio.Event]:
        runner = ProjectionRunner(pool, projection, settings)
        runner.batch_records = 100  # many small transactions: a restart lands in the middle
        stop = asyncio.Event()
        return runner, asyncio.create_task(runner.run(stop)), stop

    watcher = asyncio.create_task(watch_offsets())
    runner, task, stop = start()
    assert settings.deployment in runner.group_id and projection.name in runner.group_id
    try:
        for burst in range(5):
            before = await pool.fetchval("select count(*) from ticks")
            await append_burst(pool, store, burst)
            await wait_for(lambda: _published(pool), 60, "the relay")
            await wait_for(lambda b=before: _ticks_over(pool, b + 300), 60, "the runner to be under way")
            task.cancel()  # a crash in the middle of the stream: whatever transaction is open rolls back
            with pytest.raises(asyncio.CancelledError):
                await task
            at_restart, ends = await stored(pool, projection.name), await end_offsets(settings)
            lag = sum(ends[tp] - at_restart.get(tp, 0) for tp in ends)
            assert lag > 0, "the restart came too late to prove anything"
            runner, task, stop = start()
            await wait_for(lambda e=ends: _caught_up(pool, projection.name, e), 60, "the restarted runner")
            await asyncio.sleep(0.3)  # anything fetched twice would show now
            print(f"restart {burst + 1}: lag {lag:,}, fetched {runner.fetched:,}, discarded {runner.discarded}, "
                  f"applied {runner.applied:,}")
            assert (runner.fetched, runner.discarded, runner.applied) == (lag, 0, lag)
        stop.set()
        await task
    finally:
        task.cancel()
        sampling.set()
        await watcher
        stop_relay.set()
        await relay

    total = 5 * STREAMS * BURST
    assert decreases == []
    assert await pool.fetchval("select count(*) from ticks") == total
    assert await pool.fetchval("select count(distinct event_id) from ticks") == total
    assert await pool.fetchval("select count(*) from ticks where seq <> applied or n <> seq") == 0
    per_partition = await pool.fetchval(
        """select max(n) from (select sum(cardinality(event_ids)) as n from projection_recent
           group by topic, partition) c""")
    print(f"dedup store: at most {per_partition} ids per partition (window {projection.dedup_window})")
    assert per_partition < 2 * projection.dedup_window


async def test_the_runner_reports_its_stored_offsets_to_its_consumer_group_for_lag_tools(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """KEDA's Kafka scaler and kafka-consumer-groups.sh read the group's committed offsets; the runner
    keeps its own in Postgres and commits a copy of them to the group every few seconds."""
    from aiokafka.admin import AIOKafkaAdminClient

    store = await given_a_store(pool, settings)
    projection = TickLog()
    stop = asyncio.Event()
    relay = asyncio.create_task(Relay(pool, settings, source_for("declarations", settings)).run(stop))
    runner = ProjectionRunner(pool, projection, settings)
    task = asyncio.create_task(runner.run(stop))
    admin = AIOKafkaAdminClient(**client_config(settings))
    await admin.start()

    async def group_offsets() -> dict[tuple[str, int], int]:
        offsets = await admin.list_consumer_group_offsets(runner.group_id)
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    async def reported() -> bool:
        mine = await stored(pool, projection.name)
        return bool(mine) and await group_offsets() == {tp: o for tp, o in mine.items() if o}

    try:
        await append_burst(pool, store, 0)
        await wait_for(lambda: _published(pool), 60, "the relay")
        ends = await end_offsets(settings)
        await wait_for(lambda: _caught_up(pool, projection.name, ends), 60, "the runner")
        await wait_for(reported, 30, "the group's committed offsets to equal the stored ones")
    finally:
        stop.set()
        await asyncio.gather(task, relay, return_exceptions=True)
        await admin.close()


class LockedOutTickLog(TickLog):
    """TickLog giving up on a table lock after 100 ms: a transient error, like a deadlock."""

    async def apply(self, conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None:
        await conn.execute("set local lock_timeout = '100ms'")
        await super().apply(conn, envelopes)


async def test_a_lock_timeout_is_retried_never_dead_lettered_nor_marked_seen(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    store = await given_a_store(pool, settings)
    await append_burst(pool, store, 0)
    relay = Relay(pool, settings, source_for("declarations", settings))
    async with pool.acquire() as conn, pool.acquire() as marker:
        await relay.drain(conn, marker)
    await relay.close()

    runner = ProjectionRunner(pool, LockedOutTickLog(), settings)
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("lock table ticks in access exclusive mode")
        catching_up = asyncio.create_task(runner.catch_up())
        await asyncio.sleep(1.5)  # the runner's transactions time out meanwhile
    applied = await catching_up

    print(f"retried {runner.retried} times, dead-lettered {runner.dead_lettered}, applied {applied:,}")
    assert runner.retried >= 1 and runner.dead_lettered == 0 and applied == STREAMS * BURST
    assert await pool.fetchval("select count(*) from ticks") == STREAMS * BURST
    assert await pool.fetchval("select count(*) from ticks where seq <> applied") == 0


async def test_the_dedup_store_drops_a_copy_within_its_window_and_never_holds_more(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """A relay that crashed between send and mark publishes an event again, later on the same partition."""

    class SmallWindow(TickLog):
        dedup_window = 50

    await given_a_store(pool, settings)
    ids = [uuid.uuid4() for _ in range(200)]
    # offsets 0..199 are events 1..200; offset 200 repeats the event at offset 150 (distance 50: the window)
    sends = [(ids[i], i + 1) for i in range(200)] + [(ids[150], 151)]
    producer = AIOKafkaProducer(**client_config(settings))
    await producer.start()
    try:
        for event_id, n in sends:
            hs = headers(event_id=event_id, source=source_for("declarations", settings), type_name=Ticked.type_name(),
                         stream_id="tick-1", version=n, time=T0, actor="test", correlation_id=uuid.uuid4(),
                         causation_id=None, prev_hash="0" * 64, digest="f" * 64)
            sent = await producer.send_and_wait(DECLARATIONS.name(settings), value=encode_body(Ticked(n=n)),
                                                key=b"tick-1", headers=hs)
    finally:
        await producer.stop()

    # One reader takes the first 180 offsets, another (nothing in memory) the rest: the copy meets the
    # window as stored, pruned at every commit.
    first = ProjectionRunner(pool, SmallWindow(), settings)
    first.batch_records = 10
    applied = await first.catch_up(stop_at={TopicPartition(sent.topic, sent.partition): 180})
    second = ProjectionRunner(pool, SmallWindow(), settings)
    second.batch_records = 10
    applied += await second.catch_up()

    held = await pool.fetchval("select sum(cardinality(event_ids)) from projection_recent")
    print(f"applied {applied} of {len(sends)} records; dedup store holds {held} ids (window 50)")
    assert applied == 200 and await pool.fetchval("select count(*) from ticks where n = 151") == 1
    assert held < 2 * SmallWindow.dedup_window

    # A replay keeps the same window in memory and hands the same bounded store to a swap.
    built = await replay.rebuild(pool, SmallWindow(), settings)
    held = await pool.fetchval(f"select sum(cardinality(event_ids)) from {built.schema}.projection_recent")
    print(f"replay: applied {built.events} of {len(sends)}; its dedup store holds {held} ids")
    assert built.events == 200 and held <= SmallWindow.dedup_window


async def _published(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("select bool_and(published_at is not null) from events"))


async def _ticks_over(pool: asyncpg.Pool, n: int) -> bool:
    return bool(await pool.fetchval("select count(*) from ticks") > n)


async def _caught_up(pool: asyncpg.Pool, name: str, ends: dict[tuple[str, int], int]) -> bool:
    now = await stored(pool, name)
    return all(now.get(tp, 0) >= end for tp, end in ends.items() if end)
