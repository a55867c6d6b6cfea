"""The log's hash chain against tampering: each change is named by the verifier, exactly.

Given a published log (store and topic agree), when one thing is changed in the store or
injected on the topic, then ``shared.verify`` names that event first and fails.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import uuid

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from deploy.local import settings_env
from shared import store as event_store
from shared.envelope import Envelope, encode_body, headers, link_hash, source_for
from shared.kafka import client_config
from shared.relay import Relay
from shared.settings import Settings
from shared.store import EventStore, Recorded
from shared.topics import DECLARATIONS
from shared.verify import Report, verify
from tests.support.spine import Ticked

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)


async def given_a_published_log(pool: asyncpg.Pool, settings: Settings, n: int = 12) -> list[Envelope]:
    """n events over three streams, in one chain, relayed to the topic."""
    async with pool.acquire() as conn:
        await event_store.migrate(conn)
    store = EventStore(source_for("declarations", settings), DECLARATIONS.name(settings))
    out: list[Envelope] = []
    for i in range(n):
        stream = f"tick-{i % 3}"
        async with pool.acquire() as conn, conn.transaction():
            out += await store.append(conn, stream, i // 3, [Ticked(n=i // 3 + 1)], key=stream, recorded=Recorded(
                actor="recorder-1", time=T0 + dt.timedelta(minutes=i), correlation_id=uuid.uuid4()))
    relay = Relay(pool, settings, source_for("declarations", settings))
    async with pool.acquire() as conn, pool.acquire() as marker:
        await relay.drain(conn, marker)
    await relay.close()
    return out


async def when_verified(settings: Settings) -> Report:
    return await verify(settings, DECLARATIONS.name(settings))


def then_first(report: Report, position: int, kind: str, event: Envelope, *words: str) -> None:
    assert not report.ok
    first = report.problems[0]
    assert (first.position, first.kind, first.event_id) == (position, kind, str(event.id)), first
    for word in words:
        assert word in first.detail, first


async def test_an_untouched_log_verifies(pool: asyncpg.Pool, settings: Settings) -> None:
    await given_a_published_log(pool, settings)
    report = await when_verified(settings)
    assert report.ok, report.problems
    assert (report.store_events, report.topic_records, report.unpublished) == (12, 12, 0)


@pytest.mark.parametrize(("column", "change", "word"), [
    ("actor", "'intruder'", "actor"),
    ("recorded_at", "recorded_at - interval '40 days'", "time"),
    ("body", """convert_to(replace(convert_from(body, 'UTF8'), '"n":3', '"n":30'), 'UTF8')""", "body"),
])
async def test_an_event_altered_in_the_store_is_named(pool: asyncpg.Pool, settings: Settings, column: str,
                                                      change: str, word: str) -> None:
    log = await given_a_published_log(pool, settings)
    await pool.execute(f"update events set {column} = {change} where log_position = 7")
    report = await when_verified(settings)
    then_first(report, 7, "altered", log[6], word)
    assert len(report.problems) == 1, report.problems  # only that event: the rest of the chain still agrees


async def test_an_event_deleted_from_the_store_is_named(pool: asyncpg.Pool, settings: Settings) -> None:
    log = await given_a_published_log(pool, settings)
    await pool.execute("delete from events where log_position = 5")
    then_first(await when_verified(settings), 5, "deleted", log[4], "not in the store")


async def test_two_events_swapped_in_the_store_are_named(pool: asyncpg.Pool, settings: Settings) -> None:
    log = await given_a_published_log(pool, settings)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("update events set log_position = -1 where log_position = 5")
        await conn.execute("update events set log_position = 5 where log_position = 6")
        await conn.execute("update events set log_position = 6 where log_position = -1")
    report = await when_verified(settings)
    then_first(report, 5, "reordered", log[5], "position 5 in the store but 6 on the topic")
    assert report.problems[1].event_id == str(log[4].id)


async def test_a_forged_record_on_the_topic_is_named(pool: asyncpg.Pool, settings: Settings) -> None:
    """The forger knows the recipe and links to the real head: only the store can tell."""
    log = await given_a_published_log(pool, settings)
    head, forged = log[-1], uuid.uuid4()
    body = encode_body(Ticked(n=99))
    fields = dict(position=13, prev_hash=head.hash, event_id=forged, type_name=Ticked.type_name(),
                  source=head.source, subject="tick-0", version=5, time=T0, actor="recorder-1",
                  correlation_id=forged, causation_id=None, key="tick-0", body=body)
    producer = AIOKafkaProducer(**client_config(settings))
    await producer.start()
    try:
        await producer.send_and_wait(DECLARATIONS.name(settings), value=body, key=b"tick-0", headers=headers(
            event_id=forged, source=head.source, type_name=Ticked.type_name(), stream_id="tick-0", version=5,
            time=T0, actor="recorder-1", correlation_id=forged, causation_id=None, prev_hash=head.hash,
            digest=link_hash(**fields), position=13, key="tick-0"))
    finally:
        await producer.stop()
    report = await when_verified(settings)
    assert not report.ok
    first = report.problems[0]
    assert (first.position, first.kind, first.event_id) == (13, "inserted", str(forged)), first
    assert first.where.startswith("topic partition") and "store holds no such event" in first.detail


async def test_the_command_line_exits_non_zero_with_json_for_machines(pool: asyncpg.Pool,
                                                                      settings: Settings) -> None:
    log = await given_a_published_log(pool, settings)
    args = [sys.executable, "-m", "shared.verify", "--service", "declarations", "--json"]
    ok = await asyncio.to_thread(subprocess.run, args, env=settings_env(settings), capture_output=True, timeout=120)
    assert ok.returncode == 0, ok.stderr.decode()[-2000:]
    await pool.execute("update events set actor = 'intruder' where log_position = 3")
    bad = await asyncio.to_thread(subprocess.run, args, env=settings_env(settings), capture_output=True,
                                  timeout=120)
    assert bad.returncode == 1, bad.stderr.decode()[-2000:]
    answer = orjson.loads(bad.stdout)
    assert answer["ok"] is False
    assert (answer["first"]["position"], answer["first"]["kind"], answer["first"]["event_id"]) == (
        3, "altered", str(log[2].id))
