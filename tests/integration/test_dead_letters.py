"""Records a projection cannot decode go to the dead-letter topic with their reason; the rest flows on."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared import projection as projections
from shared.envelope import encode_body, headers
from shared.kafka import client_config
from shared.projection import ProjectionRunner
from shared.settings import Settings
from shared.topics import DEAD_LETTER, DECLARATIONS
from tests.support.spine import Ticked, TickLog

pytestmark = pytest.mark.integration


def good_headers(type_name: str = Ticked.type_name(), **override: bytes) -> list[tuple[str, bytes]]:
    hs = dict(headers(
        event_id=uuid.uuid4(), source="/test", type_name=type_name, stream_id="tick-1", version=1,
        time=dt.datetime(2026, 11, 2, tzinfo=dt.UTC), actor="test", correlation_id=uuid.uuid4(),
        causation_id=None, prev_hash="0" * 64, digest="f" * 64,
    ))
    hs.update(override)
    return list(hs.items())


BAD_RECORDS = {
    "garbage bytes": (good_headers(), b"\xff\xfe\x00garbage"),
    "no headers at all": ([], encode_body(Ticked(n=1))),
    "unknown event type": (good_headers("points.spinetest.Exploded.v1"), b'{"n": 1}'),
    "malformed ce_time": (good_headers(ce_time=b"yesterday"), encode_body(Ticked(n=1))),
    "malformed ce_id": (good_headers(ce_id=b"not-a-uuid"), encode_body(Ticked(n=1))),
    "body not matching the type": (good_headers(), b'{"n": "many"}'),
    "non-UTF-8 header": (good_headers(ce_subject=b"\xff\xff"), encode_body(Ticked(n=1))),
}


async def test_undecodable_records_go_to_the_dead_letter_topic_with_a_reason(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        await projections.migrate(conn, TickLog())
    topic = DECLARATIONS.name(settings)
    producer = AIOKafkaProducer(**client_config(settings))
    await producer.start()
    try:
        for hs, value in BAD_RECORDS.values():
            await producer.send_and_wait(topic, value=value, key=b"tick-1", headers=hs)
        await producer.send_and_wait(topic, value=encode_body(Ticked(n=7)), key=b"tick-1", headers=good_headers())
    finally:
        await producer.stop()

    runner = ProjectionRunner(pool, TickLog(), settings)
    applied = await runner.catch_up()

    assert runner.dead_lettered == len(BAD_RECORDS)
    assert applied == 1, "the good record after the bad ones is applied"
    assert await pool.fetchval("select n from ticks") == 7
    reasons = await dead_letter_reasons(settings, expect=len(BAD_RECORDS))
    assert len(reasons) == len(BAD_RECORDS)
    joined = "\n".join(reasons)
    for needle in ("body is not JSON", "missing CloudEvents header", "unknown event type",
                   "malformed CloudEvents header", "does not match", "not UTF-8"):
        assert needle in joined, f"no dead letter says {needle!r}: {joined}"


async def dead_letter_reasons(settings: Settings, expect: int) -> list[str]:
    consumer = AIOKafkaConsumer(DEAD_LETTER.name(settings), **client_config(settings),
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    reasons: list[str] = []
    try:
        for _ in range(40):
            batch = await consumer.getmany(timeout_ms=250)
            for records in batch.values():
                for r in records:
                    reasons.append(dict(r.headers)["dlq_reason"].decode())
            if len(reasons) >= expect:
                break
    finally:
        await consumer.stop()
    return reasons
