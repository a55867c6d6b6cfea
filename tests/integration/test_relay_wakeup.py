"""The relay sleeps while the outbox is empty and wakes when an append commits (NOTIFY from the
log head), not by polling: an idle site costs no query 50 times a second, a new row still goes out
at once."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

import asyncpg
import pytest

from shared import store as event_store
from shared.envelope import source_for
from shared.relay import Relay
from shared.settings import Settings
from shared.store import EventStore, Recorded
from shared.topics import DECLARATIONS
from tests.support.spine import Ticked

pytestmark = pytest.mark.integration


async def append_one(pool: asyncpg.Pool, store: EventStore, stream: str) -> None:
    async with pool.acquire() as conn:
        await store.append(conn, stream, 0, [Ticked(n=1)], key=stream, recorded=Recorded(
            actor="writer", time=dt.datetime.now(dt.UTC), correlation_id=uuid.uuid4()))


async def published(pool: asyncpg.Pool, patience_s: float) -> float:
    """Seconds until the outbox is empty (fails after ``patience_s``)."""
    began = time.monotonic()
    while await pool.fetchval("select count(*) from events where published_at is null"):
        assert time.monotonic() - began < patience_s, "the relay did not publish"
        await asyncio.sleep(0.02)
    return time.monotonic() - began


async def test_an_idle_relay_sleeps_until_an_append_wakes_it(pool: asyncpg.Pool, settings: Settings) -> None:
    # given a relay that would poll only every 60 s, running on an empty outbox
    async with pool.acquire() as conn:
        await event_store.migrate(conn)
    store = EventStore(source_for("declarations", settings), DECLARATIONS.name(settings))
    relay = Relay(pool, settings.model_copy(update={"relay_poll_s": 60.0}), source_for("declarations", settings))
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await append_one(pool, store, "wake-1")
        await published(pool, patience_s=30)  # started, caught up
        # when it has nothing to do for a second
        rounds = relay.rounds
        await asyncio.sleep(1.0)
        # then it ran no round meanwhile (polling every relay_idle_sleep_s would have run ~100)
        assert relay.rounds - rounds <= 1
        # when an append commits, then it is on Kafka at once, not after relay_poll_s
        await append_one(pool, store, "wake-2")
        assert await published(pool, patience_s=10) < 5
        assert relay.published == 2
    finally:
        stop.set()
        await task


async def test_a_lone_append_costs_the_relay_one_round_and_one_fetch(pool: asyncpg.Pool, settings: Settings) -> None:
    # given a relay at rest (a site between two declarations), its outbox fetches counted
    async with pool.acquire() as conn:
        await event_store.migrate(conn)
    store = EventStore(source_for("declarations", settings), DECLARATIONS.name(settings))
    relay = Relay(pool, settings.model_copy(update={"relay_poll_s": 60.0}), source_for("declarations", settings))
    fetches = 0
    fetch = relay.fetch

    async def counted(conn: asyncpg.Connection, after: int = 0) -> list[asyncpg.Record]:
        nonlocal fetches
        fetches += 1
        return await fetch(conn, after)

    relay.fetch = counted  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await append_one(pool, store, "lone-1")
        await published(pool, patience_s=30)
        await asyncio.sleep(0.5)
        rounds, fetched = relay.rounds, fetches
        # when one append commits and nothing follows it
        await append_one(pool, store, "lone-2")
        await published(pool, patience_s=10)
        await asyncio.sleep(0.5)
        # then one round with one fetch published it: no fetch for a page after a short one, no second round to
        # find the outbox empty again (before: two rounds, three fetches)
        assert (relay.rounds - rounds, fetches - fetched) == (1, 1)
        assert relay.published == 2
    finally:
        stop.set()
        await task
