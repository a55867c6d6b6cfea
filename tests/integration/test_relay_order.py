"""Relay order under stress: 30 concurrent writers on 4 hot streams plus one long transaction,
the relay running throughout. Every stream's versions reach the topic in version order, and no
committed row waits while rows committed after it are published.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared import store as event_store
from shared.envelope import Envelope, decode, source_for
from shared.kafka import consumer_config
from shared.relay import Relay
from shared.settings import Settings
from shared.store import ConcurrencyError, EventStore, Recorded
from shared.topics import DECLARATIONS
from shared.verify import verify
from tests.support.spine import Ticked

pytestmark = pytest.mark.integration

WRITERS, HOT, SECONDS, LONG_S = 30, 4, 6.0, 3.0


async def write(pool: asyncpg.Pool, store: EventStore, stop: asyncio.Event, committed: dict[uuid.UUID, float],
                *, stream: str | None = None, work_s: float = 0.005, once: bool = False) -> None:
    """Commands as the services run them: claim the idempotency key first (the transaction holds
    an xid from then on), load and decide for a while, append, commit."""
    while not stop.is_set():
        s = stream or f"hot-{random.randrange(HOT)}"
        async with pool.acquire() as conn:
            try:
                async with conn.transaction():
                    await conn.execute("insert into command_log (idempotency_key, fingerprint) values ($1, '')",
                                       uuid.uuid4().hex)
                    await asyncio.sleep(random.uniform(0, work_s) if not once else work_s)
                    version, _ = await store.stream_version(conn, s)
                    envs = await store.append(conn, s, version, [Ticked(n=version + 1)], key=s, recorded=Recorded(
                        actor="writer", time=dt.datetime.now(dt.UTC), correlation_id=uuid.uuid4()))
            except ConcurrencyError:
                continue
        committed[envs[0].id] = time.time()
        if once:
            return


async def read_topic(settings: Settings) -> list[tuple[int, float, Envelope]]:
    """(partition, broker timestamp in s, envelope) in each partition's offset order."""
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    try:
        topic = DECLARATIONS.name(settings)
        tps = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[int, float, Envelope]] = []
        todo = {tp for tp in tps if ends[tp]}
        while todo:
            for tp, records in (await consumer.getmany(*todo, timeout_ms=500, max_records=5000)).items():
                out += [(tp.partition, r.timestamp / 1000, decode(r.headers, r.key, r.value)) for r in records]
                if records and records[-1].offset >= ends[tp] - 1:
                    todo.discard(tp)
        return out
    finally:
        await consumer.stop()


async def test_every_stream_reaches_the_topic_in_version_order_under_stress(pool: asyncpg.Pool,
                                                                             settings: Settings) -> None:
    async with pool.acquire() as conn:
        await event_store.migrate(conn)
    store = EventStore(source_for("declarations", settings), DECLARATIONS.name(settings))
    committed: dict[uuid.UUID, float] = {}
    stop_writers, stop_relay = asyncio.Event(), asyncio.Event()
    relay = asyncio.create_task(Relay(pool, settings, source_for("declarations", settings)).run(stop_relay))
    writers = [asyncio.create_task(write(pool, store, stop_writers, committed)) for _ in range(WRITERS - 1)]
    await asyncio.sleep(1.0)
    long = asyncio.create_task(write(pool, store, stop_writers, committed, stream="long-1", work_s=LONG_S, once=True))
    await asyncio.sleep(SECONDS - 1.0)
    stop_writers.set()
    await asyncio.gather(*writers, long)
    deadline = time.monotonic() + 60
    while await pool.fetchval("select count(*) from events where published_at is null"):
        assert time.monotonic() < deadline, "the relay did not catch up"
        await asyncio.sleep(0.05)
    stop_relay.set()
    await relay

    records = await read_topic(settings)

    last: dict[str, int] = {}
    partition_of: dict[str, int] = {}
    for partition, _, env in records:
        assert partition_of.setdefault(env.subject, partition) == partition
        assert env.sequence == last.get(env.subject, 0) + 1, f"{env.subject}: v{env.sequence} after v{last.get(env.subject)}"  # noqa: E501
        last[env.subject] = env.sequence
    published = {env.id: ts for _, ts, env in records}
    assert set(published) == set(committed)
    assert "long-1" in last
    held, latency = longest_waits(committed, published)
    print(f"\n{len(committed):,} events by {WRITERS} writers on {HOT} hot streams + one {LONG_S:.0f} s transaction; "
          f"longest wait of a committed row while later rows were published: {held:.3f} s; "
          f"longest commit → topic: {latency:.3f} s")
    assert held <= 1.0
    report = await verify(settings, DECLARATIONS.name(settings))
    assert report.ok, report.problems[:3]


def longest_waits(committed: dict[uuid.UUID, float], published: dict[uuid.UUID, float]) -> tuple[float, float]:
    """(the longest a committed row waited while a row committed after it was already on the
    topic, the longest commit → topic time). Times are wall clock: the writer's after commit,
    the broker's record timestamp (ms) for the topic."""
    rows = sorted((committed[i], published[i]) for i in committed)
    held, first_later = 0.0, float("inf")
    for commit, publish in reversed(rows):
        if first_later < publish:
            held = max(held, publish - commit)
        first_later = min(first_later, publish)
    return held, max(max(0.0, p - c) for c, p in rows)
