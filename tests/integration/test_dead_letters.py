"""Records a projection cannot decode, or that come from the wrong source or topic, go to the
dead-letter topic with their reason; the rest flows on."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.declarations.certified import CertifiedMonths
from shared import projection as projections
from shared.envelope import encode_body, headers, source_for
from shared.events.review import MonthCertified
from shared.kafka import client_config
from shared.projection import ProjectionRunner
from shared.settings import Settings
from shared.topics import DEAD_LETTER, DECLARATIONS, REVIEW
from tests.support.spine import Ticked, TickLog

pytestmark = pytest.mark.integration


def good_headers(type_name: str = Ticked.type_name(), source: str = source_for("declarations"),
                 **override: bytes) -> list[tuple[str, bytes]]:
    hs = dict(headers(
        event_id=uuid.uuid4(), source=source, type_name=type_name, stream_id="tick-1", version=1,
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
    "a declarations event signed by review": (good_headers(source=source_for("review")), encode_body(Ticked(n=1))),
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
                   "malformed CloudEvents header", "does not match", "not UTF-8", "wrong source"):
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


class CertifiedMonthsFromBothTopics(CertifiedMonths):
    """A consumer that reads the declarations topic too: a MonthCertified put there must still be refused."""

    topics = (REVIEW, DECLARATIONS)  # type: ignore[assignment]


def certified(month: str) -> bytes:
    return encode_body(MonthCertified(community_id="c-01", month=month, count=0, total=0, digest="0" * 64,
                                      signed_by=("secretary",), certified_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC)))


async def test_a_month_certified_from_the_wrong_source_or_topic_is_dead_lettered_and_not_counted(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    # given a forged certification signed as declarations on the review topic, a genuine-looking
    # one put on the declarations topic, and one from review on its own topic
    async with pool.acquire() as conn:
        await projections.migrate(conn, CertifiedMonths())
    kind = MonthCertified.type_name()
    producer = AIOKafkaProducer(**client_config(settings))
    await producer.start()
    try:
        await producer.send_and_wait(REVIEW.name(settings), value=certified("2026-09"), key=b"c-01",
                                     headers=good_headers(kind, source=source_for("declarations", settings)))
        await producer.send_and_wait(DECLARATIONS.name(settings), value=certified("2026-10"), key=b"c-01",
                                     headers=good_headers(kind, source=source_for("review", settings)))
        await producer.send_and_wait(REVIEW.name(settings), value=certified("2026-11"), key=b"c-01",
                                     headers=good_headers(kind, source=source_for("review", settings)))
    finally:
        await producer.stop()

    # when a consumer reading both topics catches up
    runner = ProjectionRunner(pool, CertifiedMonthsFromBothTopics(), settings)
    await runner.catch_up()

    # then only the genuine month counts, and the two others are dead-lettered with their reason
    assert [r["month"] for r in await pool.fetch("select month from certified_months")] == ["2026-11"]
    assert runner.dead_lettered == 2
    reasons = sorted(await dead_letter_reasons(settings, expect=2))
    print("\n".join(reasons))
    assert len(reasons) == 2 and all(r.startswith("wrong source") for r in reasons)
    assert any(f"not on {DECLARATIONS.name(settings)}" in r for r in reasons)
    assert any(f"not from {source_for('declarations', settings)!r}" in r for r in reasons)
