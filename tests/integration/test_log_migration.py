"""An events table written before the log chain: read as it is, never rewritten, and the chain
starts after it.

Given rows with old type names, the per-stream chain and (some of them) on the topic with the old
headers, when the store is migrated and new events are appended and relayed, then every row and
record still reads (upcast), the old rows are untouched, and the verifier accepts the whole log.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from shared import store as event_store
from shared.envelope import GENESIS_HASH, chain_hash, decode, legacy_source, source_for
from shared.kafka import client_config
from shared.relay import Relay
from shared.settings import Settings
from shared.store import EventStore, Recorded
from shared.topics import DECLARATIONS
from shared.verify import verify
from tests.integration.test_relay_order import read_topic
from tests.support.spine import Ticked

pytestmark = pytest.mark.integration

OLD_SCHEMA = """
create table events (
    position bigserial primary key, event_id uuid not null unique, stream_id text not null,
    version integer not null check (version >= 1), type text not null, topic text not null, key text not null,
    body bytea not null, recorded_at timestamptz not null, actor text not null, correlation_id uuid not null,
    causation_id uuid, prev_hash text not null, hash text not null, published_at timestamptz,
    unique (stream_id, version)
);
create index events_unpublished on events (position) where published_at is null;
"""
OLD_TYPE = "points.declarations.Ticked.v1"  # the test event is owned by declarations
T0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


async def given_an_old_log(pool: asyncpg.Pool, settings: Settings) -> list[tuple[uuid.UUID, str]]:
    """Streams old-0 and old-1 with two events each; old-0's are on the topic with the old headers."""
    await pool.execute(OLD_SCHEMA)
    rows = []
    for stream in ("old-0", "old-1"):
        prev = GENESIS_HASH
        for version in (1, 2):
            body = f'{{"n":{version}}}'.encode()
            digest = chain_hash(prev, OLD_TYPE, stream, version, body)
            rows.append((uuid.uuid4(), stream, version, OLD_TYPE, DECLARATIONS.name(settings), stream, body,
                         T0, "old-writer", uuid.uuid4(), None, prev, digest))
            prev = digest
    await pool.copy_records_to_table("events", records=rows, columns=[
        "event_id", "stream_id", "version", "type", "topic", "key", "body", "recorded_at", "actor",
        "correlation_id", "causation_id", "prev_hash", "hash"])
    producer = AIOKafkaProducer(**client_config(settings))
    await producer.start()
    try:
        for r in rows[:2]:  # the old relay's headers: ce_sequence was the stream version
            await producer.send_and_wait(DECLARATIONS.name(settings), key=r[5].encode(), value=r[6], headers=[
                ("ce_specversion", b"1.0"), ("ce_id", str(r[0]).encode()),
                ("ce_source", legacy_source("declarations").encode()), ("ce_type", OLD_TYPE.encode()),
                ("ce_subject", r[1].encode()), ("ce_time", T0.isoformat().encode()),
                ("ce_sequence", str(r[2]).encode()), ("ce_actor", b"old-writer"),
                ("ce_correlationid", str(r[9]).encode()), ("ce_prevhash", r[11].encode()),
                ("ce_hash", r[12].encode()), ("content-type", b"application/json")])
    finally:
        await producer.stop()
    await pool.execute("update events set published_at = now() where stream_id = 'old-0'")
    return [(r[0], r[12]) for r in rows]


async def test_an_old_log_reads_as_it_is_and_the_chain_starts_after_it(pool: asyncpg.Pool,
                                                                        settings: Settings) -> None:
    old = await given_an_old_log(pool, settings)

    async with pool.acquire() as conn:
        await event_store.migrate(conn)
    store = EventStore(source_for("declarations", settings), DECLARATIONS.name(settings))
    async with pool.acquire() as conn, conn.transaction():
        new = await store.append(conn, "old-0", 2, [Ticked(n=3)], key="old-0", recorded=Recorded(
            actor="writer", time=T0 + dt.timedelta(days=40), correlation_id=uuid.uuid4()))
    relay = Relay(pool, settings, source_for("declarations", settings))
    async with pool.acquire() as conn, pool.acquire() as marker:
        await relay.drain(conn, marker)
    await relay.close()

    assert [(r["event_id"], r["hash"], r["log_position"]) for r in await pool.fetch(
        "select event_id, hash, log_position from events where type = $1 order by position", OLD_TYPE)] == [
        (event_id, digest, None) for event_id, digest in old]  # never rewritten
    async with pool.acquire() as conn:
        loaded = await store.load(conn, "old-0")
    assert [(e.sequence, e.event) for e in loaded] == [(1, Ticked(n=1)), (2, Ticked(n=2)), (3, Ticked(n=3))]
    assert new[0].position == 1 and new[0].prev_hash == GENESIS_HASH
    on_topic = sorted(((env.subject, env.sequence, env.position) for _, _, env in await read_topic(settings)),
                      key=str)
    assert on_topic == [("old-0", 1, None), ("old-0", 2, None), ("old-0", 3, 1), ("old-1", 1, None),
                        ("old-1", 2, None)]
    report = await verify(settings, DECLARATIONS.name(settings))
    assert report.ok, report.problems
    assert (report.legacy, report.store_events) == (4, 1)


def test_an_old_record_decodes_with_its_old_headers() -> None:
    env = decode([("ce_specversion", b"1.0"), ("ce_id", str(uuid.uuid4()).encode()),
                  ("ce_source", b"/hezhang/declarations"), ("ce_type", OLD_TYPE.encode()),
                  ("ce_subject", b"old-0"), ("ce_time", T0.isoformat().encode()), ("ce_sequence", b"2")],
                 b"old-0", b'{"n":2}')
    assert (env.event, env.sequence, env.position, env.source) == (Ticked(n=2), 2, None, "/hezhang/declarations")
