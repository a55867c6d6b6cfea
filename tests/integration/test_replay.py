"""Replays never touch live data: rebuild and as-of build a scratch schema while the service takes
load; going live is an explicit swap that a running runner cannot race."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
import pytest

from deploy.local import settings_env
from shared import replay
from shared.envelope import Envelope, source_for
from shared.projection import ProjectionRunner
from shared.relay import Relay
from shared.settings import Settings
from shared.store import EventStore, Recorded
from tests.integration.test_spine import T0, given_a_store, wait_for
from tests.support.spine import Ticked, TickLog

pytestmark = pytest.mark.integration

STREAMS, PER_BURST, BURSTS = 100, 10, 10  # 10,000 events; burst k is recorded at T0 + 10k seconds


@dataclass
class Service:
    """The spine under load: a writer appending bursts, the relay, the live runner, and a watch on
    the live row count."""

    pool: asyncpg.Pool
    store: EventStore
    counts: list[int] = field(default_factory=list)
    bursts_written: int = 0

    def shrinks(self) -> list[tuple[int, int]]:
        return [(a, b) for a, b in zip(self.counts, self.counts[1:], strict=False) if b < a]

    async def write(self, pause_s: float) -> None:
        for burst in range(BURSTS):
            async with self.pool.acquire() as conn, conn.transaction():
                for s in range(STREAMS):
                    start = burst * PER_BURST
                    await self.store.append(
                        conn, f"tick-{s}", start, [Ticked(n=start + i + 1) for i in range(PER_BURST)], key=f"tick-{s}",
                        recorded=Recorded(actor="test", time=T0 + dt.timedelta(seconds=10 * burst),
                                          correlation_id=uuid.uuid4()))
            self.bursts_written = burst + 1
            await asyncio.sleep(pause_s)

    async def published(self, n: int) -> bool:
        return bool(await self.pool.fetchval(
            "select count(*) >= $1 and bool_and(published_at is not null) from events", n))


class BusyTickLog(TickLog):
    """TickLog whose transactions take a while: a swap lands while the runner is mid-stream."""

    async def apply(self, conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None:
        await asyncio.sleep(0.03)
        await super().apply(conn, envelopes)


@asynccontextmanager
async def a_service_under_load(pool: asyncpg.Pool, settings: Settings, pause_s: float = 0.4,
                               projection: TickLog | None = None, batch_records: int = 5000
                               ) -> AsyncIterator[tuple[Service, asyncio.Task[None], ProjectionRunner]]:
    svc = Service(pool, await given_a_store(pool, settings))
    stop = asyncio.Event()
    relay = asyncio.create_task(Relay(pool, settings, source_for("declarations", settings)).run(stop))
    runner = ProjectionRunner(pool, projection or TickLog(), settings)
    runner.batch_records = batch_records
    running = asyncio.create_task(runner.run(stop))

    async def watch() -> None:
        while not stop.is_set():
            svc.counts.append(await pool.fetchval("select count(*) from ticks"))
            await asyncio.sleep(0.01)

    watching = asyncio.create_task(watch())
    await asyncio.wait_for(runner.ready.wait(), 60)  # the group has formed: load starts now
    writer = asyncio.create_task(svc.write(pause_s))
    try:
        yield svc, writer, runner
        await writer
        await wait_for(lambda: svc.published(STREAMS * PER_BURST * BURSTS), 60, "the relay")
        await wait_for(lambda: _live_rows(pool, STREAMS * PER_BURST * BURSTS), 60, "the live runner")
    finally:
        writer.cancel()
        stop.set()
        for task in (relay, running, watching):
            await task


async def live_digest(pool: asyncpg.Pool) -> str:
    async with pool.acquire() as conn:
        return (await replay.describe(conn, TickLog(), "public"))[2]


async def test_rebuild_and_as_of_under_load_never_shrink_the_live_model_and_match_a_full_replay(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    until = T0 + dt.timedelta(seconds=45)  # bursts 0..4
    async with a_service_under_load(pool, settings) as (svc, _, _):
        await wait_for(lambda: svc.published(6 * STREAMS * PER_BURST), 60, "burst 5 on the topic")
        as_of, built = await asyncio.gather(
            replay.rebuild(pool, TickLog(), settings, until=until, workers=2),
            replay.rebuild(pool, TickLog(), settings, workers=1))
        during = svc.bursts_written
    print(f"during load (after burst {during} of {BURSTS} was written): as-of built {as_of.events:,} events into "
          f"{as_of.schema} {as_of.rows}, rebuild built {built.events:,} into {built.schema} {built.rows}")
    print(f"live rows sampled {len(svc.counts)} times, {svc.counts[0]:,} -> {svc.counts[-1]:,}; "
          f"shrinks: {svc.shrinks()}")
    assert svc.shrinks() == [] and during < BURSTS, "the replays ran while the writer was writing"
    assert built.events == sum(built.offsets.values()) == built.rows["ticks"]

    full = await replay.rebuild(pool, TickLog(), settings, into="replay_ticklog_full")
    again = await replay.rebuild(pool, TickLog(), settings, until=until)
    print(f"after load: full rebuild {full.events:,} events, digest {full.digest[:16]}…; live digest "
          f"{(await live_digest(pool))[:16]}…; as-of during load {as_of.digest[:16]}…, after {again.digest[:16]}…")
    assert full.digest == await live_digest(pool)
    assert as_of.events == again.events == 5 * STREAMS * PER_BURST
    assert as_of.digest == again.digest


async def test_a_swap_under_load_goes_live_atomically_and_the_runner_carries_on_exactly_once(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    busy = BusyTickLog()
    loaded = a_service_under_load(pool, settings, pause_s=0.2, projection=busy, batch_records=200)
    async with loaded as (svc, _, runner):
        await wait_for(lambda: svc.published(3 * STREAMS * PER_BURST), 60, "three bursts on the topic")
        await wait_for(lambda: _live_rows(pool, 1000), 60, "the live runner to be under way")
        built = await replay.rebuild(pool, busy, settings)
        rows_before = await pool.fetchval("select count(*) from ticks")
        announced: list[str] = []
        async with pool.acquire() as listener:  # a cache of the read model (the leaderboards) listens
            await listener.add_listener(replay.SWAPPED, lambda *a: announced.append(a[3]))
            swapped = await replay.swap(pool, busy, built.schema)
            rows_after = await pool.fetchval("select count(*) from ticks")
            await wait_for(lambda: _said(announced), 10, "the swap announced")
        during = svc.bursts_written
        assert announced == [busy.name]
    print(f"swapped in {built.rows['ticks']:,} rows (generation {swapped['generation']}) while live had "
          f"{rows_before:,} (just after: {rows_after:,}); writer at burst {during} of {BURSTS}; runner applied "
          f"{runner.applied:,}, discarded {runner.discarded}")
    assert during < BURSTS, "the swap happened under load"
    total = STREAMS * PER_BURST * BURSTS
    assert await pool.fetchval("select count(*) from ticks") == total
    assert await pool.fetchval("select count(distinct event_id) from ticks") == total
    assert await pool.fetchval("select count(*) from ticks where seq <> applied or n <> seq") == 0
    full = await replay.rebuild(pool, TickLog(), settings, into="replay_ticklog_full")
    assert full.digest == await live_digest(pool)
    # the previous live model is kept in the scratch schema: a second swap would undo the first
    assert await pool.fetchval(f"select count(*) from {built.schema}.ticks") >= rows_before


async def test_a_replay_or_swap_aimed_at_live_tables_is_refused_and_changes_nothing(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    store = await given_a_store(pool, settings)
    async with pool.acquire() as conn, conn.transaction():
        await store.append(conn, "tick-1", 0, [Ticked(n=1)], key="tick-1",
                           recorded=Recorded(actor="test", time=T0, correlation_id=uuid.uuid4()))
    hand_made = uuid.uuid4()  # a live row the log does not hold: a rebuild would not have it
    await pool.execute("insert into ticks values ($1, 'tick-1', 1, 1, 1)", hand_made)

    for target in ("public", "ticks_new"):
        with pytest.raises(replay.LiveTablesRefused, match="refusing to replay ticklog into schema"):
            await replay.rebuild(pool, TickLog(), settings, into=target)
        with pytest.raises(replay.LiveTablesRefused):
            await replay.swap(pool, TickLog(), target)
    with pytest.raises(replay.LiveTablesRefused, match="replays write into a scratch schema"):
        await ProjectionRunner(pool, TickLog(), settings).catch_up(fresh=True)  # the pool's schema is live
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shared.projection", "rebuild", "tests.support.spine:TickLog", "--scratch", "public",
        env=settings_env(settings), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(cli.communicate(), 60)
    print(err.decode().strip().splitlines()[-1])
    assert cli.returncode == 2 and "it holds the live read model" in err.decode()
    assert await pool.fetchval("select event_id from ticks") == hand_made

    # The explicit way: rebuild into the scratch schema, then swap it live (both from the command line).
    relay = Relay(pool, settings, source_for("declarations", settings))
    async with pool.acquire() as conn, pool.acquire() as marker:
        await relay.drain(conn, marker)
    await relay.close()
    built = json.loads(await cli_run(settings, "rebuild", "tests.support.spine:TickLog", "--workers", "1"))
    swapped = json.loads(await cli_run(settings, "swap", "tests.support.spine:TickLog"))
    print(f"rebuild: {built}\nswap: {swapped}")
    assert (built["schema"], built["events"], built["rows"]) == ("replay_ticklog", 1, {"ticks": 1})
    assert swapped["generation"] == 1 and swapped["previous_live_kept_in"] == "replay_ticklog"
    assert await pool.fetchval("select n from ticks") == 1 and await pool.fetchval("select count(*) from ticks") == 1
    assert await pool.fetchval("select event_id from replay_ticklog.ticks") == hand_made


async def cli_run(settings: Settings, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shared.projection", *args, env=settings_env(settings),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def _said(announced: list[str]) -> bool:
    return bool(announced)


async def _live_rows(pool: asyncpg.Pool, n: int) -> bool:
    return bool(await pool.fetchval("select count(*) from ticks") >= n)
