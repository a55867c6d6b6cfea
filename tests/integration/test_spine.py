"""The spine end to end: event store -> relay -> Kafka -> projection, with crashes in the middle."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from deploy.local import settings_env, stop_process
from shared import projection as projections
from shared import store as event_store
from shared.envelope import source_for
from shared.kafka import client_config
from shared.projection import ProjectionRunner, partitions_of, table_digest
from shared.relay import Relay
from shared.settings import Settings
from shared.store import ConcurrencyError, EventStore, Recorded
from shared.topics import DECLARATIONS
from tests.support.settings import fresh_settings
from tests.support.spine import Ticked, TickLog

pytestmark = pytest.mark.integration

STREAMS, PER_STREAM = 100, 100
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


async def given_a_store(pool: asyncpg.Pool, settings: Settings) -> EventStore:
    async with pool.acquire() as conn:
        await event_store.migrate(conn)
        await projections.migrate(conn, TickLog())
    return EventStore(source_for("declarations"), DECLARATIONS.name(settings))


async def append_ticks(pool: asyncpg.Pool, store: EventStore, *, chunk: int = 10) -> None:
    """10,000 events over 100 streams, interleaved in chunks so streams mix in the log."""
    for start in range(0, PER_STREAM, chunk):
        async with pool.acquire() as conn, conn.transaction():
            for s in range(STREAMS):
                await store.append(
                    conn, f"tick-{s}", start, [Ticked(n=start + i + 1) for i in range(chunk)], key=f"tick-{s}",
                    recorded=Recorded(actor="test", time=T0 + dt.timedelta(seconds=start), correlation_id=uuid.uuid4()),
                )


async def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def then_exactly_once_in_order(pool: asyncpg.Pool) -> None:
    assert await pool.fetchval("select count(*) from ticks") == STREAMS * PER_STREAM
    assert await pool.fetchval("select count(distinct event_id) from ticks") == STREAMS * PER_STREAM
    out_of_order = await pool.fetchval("select count(*) from ticks where seq <> applied or n <> seq")
    assert out_of_order == 0


def spawn(args: list[str], settings: Settings, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], env=settings_env(settings, **env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def kill9(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


async def test_two_appends_at_the_same_expected_version_one_wins(pool: asyncpg.Pool, settings: Settings) -> None:
    store = await given_a_store(pool, settings)
    recorded = Recorded(actor="test", time=T0, correlation_id=uuid.uuid4())

    async def append_once() -> str:
        async with pool.acquire() as conn, conn.transaction():
            await store.append(conn, "tick-x", 0, [Ticked(n=1)], key="x", recorded=recorded)
            await asyncio.sleep(0.2)  # hold the transaction open so the two overlap
        return "ok"

    results = await asyncio.gather(append_once(), append_once(), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["ConcurrencyError", "str"]
    assert await pool.fetchval("select count(*) from events where stream_id = 'tick-x'") == 1
    with pytest.raises(ConcurrencyError):
        async with pool.acquire() as conn, conn.transaction():
            await store.append(conn, "tick-x", 0, [Ticked(n=2)], key="x", recorded=recorded)


async def test_projection_killed_mid_run_still_applies_each_event_once(pool: asyncpg.Pool, settings: Settings) -> None:
    store = await given_a_store(pool, settings)
    await append_ticks(pool, store)
    stop_relay = asyncio.Event()
    relay = asyncio.create_task(Relay(pool, settings, source_for("declarations")).run(stop_relay))
    runner_args = ["-m", "shared.projection", "run", "tests.support.spine:TickLog"]
    settings = settings.model_copy(update={"projection_batch_records": 1000})  # many transactions: killed mid-run
    proc = spawn(runner_args, settings)
    try:
        await wait_for(lambda: _count_over(pool, 2_000), 60, "the projection to be under way")
        kill9(proc)
        killed_at = await pool.fetchval("select count(*) from ticks")
        assert killed_at < STREAMS * PER_STREAM, "the kill came too late to prove anything"
        proc = spawn(runner_args, settings)
        await wait_for(lambda: _count_over(pool, STREAMS * PER_STREAM - 1), 90, "all 10,000 rows")
        await asyncio.sleep(1.0)  # anything doubled would land now
    finally:
        stop_process(proc)
        stop_relay.set()
        await relay
    await then_exactly_once_in_order(pool)

    # Rebuilding from offset 0 (into a scratch schema) gives a byte-identical table.
    async with pool.acquire() as conn:
        before = await table_digest(conn, "ticks", "stream_id, seq")
    built = await projections.rebuild(pool, TickLog(), settings)
    assert built.events == STREAMS * PER_STREAM
    async with pool.acquire() as conn:
        assert await table_digest(conn, f"{built.schema}.ticks", "stream_id, seq") == before

    # So does a rebuild shared out over worker processes.
    built = await projections.rebuild(pool, TickLog(), settings, workers=3)
    assert built.events == STREAMS * PER_STREAM
    async with pool.acquire() as conn:
        assert await table_digest(conn, f"{built.schema}.ticks", "stream_id, seq") == before


async def test_relay_killed_mid_run_loses_nothing_and_doubles_nothing(pool: asyncpg.Pool, settings: Settings) -> None:
    store = await given_a_store(pool, settings)
    stop_runner = asyncio.Event()
    runner = ProjectionRunner(pool, TickLog(), settings)
    consuming = asyncio.create_task(runner.run(stop_runner))
    relay_env = {"RELAY_BATCH_SIZE": "100"}
    proc = spawn(["-m", "shared.relay", "declarations"], settings, **relay_env)
    try:
        writer = asyncio.create_task(append_ticks(pool, store, chunk=5))
        await wait_for(lambda: _published_over(pool, 3_000), 60, "the relay to be under way")
        kill9(proc)
        proc = spawn(["-m", "shared.relay", "declarations"], settings, **relay_env)
        await writer
        await wait_for(lambda: _count_over(pool, STREAMS * PER_STREAM - 1), 90, "all 10,000 rows")
        await asyncio.sleep(1.0)
    finally:
        stop_process(proc)
        stop_runner.set()
        await consuming
    await then_exactly_once_in_order(pool)
    assert await pool.fetchval("select count(*) from events where published_at is null") == 0
    on_topic = await _records_on(settings, DECLARATIONS.name(settings))
    assert on_topic >= STREAMS * PER_STREAM  # a batch in flight at the kill may be sent twice


async def test_replay_as_of_a_time_stops_there(pool: asyncpg.Pool, settings: Settings) -> None:
    store = await given_a_store(pool, settings)
    await append_ticks(pool, store)  # chunk k is recorded at T0 + 10k seconds
    stop_relay = asyncio.Event()
    relay = asyncio.create_task(Relay(pool, settings, source_for("declarations")).run(stop_relay))
    await wait_for(lambda: _all_published(pool), 60, "the relay")
    stop_relay.set()
    await relay
    for workers in (1, 2):
        built = await projections.rebuild(pool, TickLog(), settings, until=T0 + dt.timedelta(seconds=45),
                                          workers=workers)
        assert built.events == STREAMS * 50  # chunks at 0, 10, 20, 30, 40 s
        assert await pool.fetchval(f"select max(n) from {built.schema}.ticks") == 50


async def _count_over(pool: asyncpg.Pool, n: int) -> bool:
    return bool(await pool.fetchval("select count(*) from ticks") > n)


async def _published_over(pool: asyncpg.Pool, n: int) -> bool:
    return bool(await pool.fetchval("select count(*) from events where published_at is not null") > n)


async def _all_published(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("select count(*) = 10000 and bool_and(published_at is not null) from events"))


async def _records_on(settings: Settings, topic: str) -> int:
    consumer = AIOKafkaConsumer(**client_config(settings))
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [topic])
        ends = await consumer.end_offsets(tps)
        return sum(ends.values())
    finally:
        await consumer.stop()


async def test_a_rebuild_asked_for_more_workers_than_partitions_still_applies_everything(
    stack: tuple[str, str],
) -> None:
    settings = await fresh_settings(*stack, topic_partitions=1)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    try:
        store = await given_a_store(pool, settings)
        async with pool.acquire() as conn, conn.transaction():
            for s in range(3):
                await store.append(conn, f"tick-{s}", 0, [Ticked(n=i + 1) for i in range(5)], key=f"tick-{s}",
                                   recorded=Recorded(actor="test", time=T0, correlation_id=uuid.uuid4()))
        relay = Relay(pool, settings, source_for("declarations"))
        async with pool.acquire() as conn, pool.acquire() as marker:
            await relay.drain(conn, marker)
        await relay.close()

        built = await projections.rebuild(pool, TickLog(), settings, workers=4)

        assert built.events == 15
        assert await pool.fetchval(f"select count(*) from {built.schema}.ticks where seq = applied and n = seq") == 15
    finally:
        await pool.close()
