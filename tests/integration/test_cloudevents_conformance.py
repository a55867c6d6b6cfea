"""Every record of a realistic run read right by the official CloudEvents SDK (``cloudevents``).

Given a community month through its whole life (declarations, verification, certification,
notice, objections, corrections, on both topics), every record converts to a CloudEvent in
Kafka binary mode and back, and through structured mode and back; the attributes are what the
spec asks (absolute ``source``, reverse-DNS ``type``, ``dataschema``, ``partitionkey`` = the
Kafka key), the chain recomputes from the CloudEvent alone, and ``sequence`` sorts as text in
chain order within each source.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat

from shared.envelope import decode, format_time, link_hash
from shared.events import schema_uri
from shared.kafka import consumer_config
from shared.settings import Settings
from shared.store import EventStore
from shared.topics import DECLARATIONS, REVIEW
from shared.verify import compare, read_store, read_topic
from tests.integration.review.support import DeclarationsFeed
from tests.integration.review.test_certification_on_the_log import (  # noqa: F401  (fixtures)
    a_month_through_its_whole_life,
    feed,
    review_store,
)

pytestmark = pytest.mark.integration

TYPE = re.compile(r"^cn\.gov\.hezhang\.points\.[a-z]+\.[A-Z][A-Za-z]+\.v[0-9]+$")


async def records_of(settings: Settings, topic: str) -> list[tuple[int, Any]]:
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[int, Any]] = []
        todo = {tp for tp in tps if ends[tp]}
        while todo:
            for tp, records in (await consumer.getmany(*todo, timeout_ms=500)).items():
                out += [(tp.partition, r) for r in records]
                if records and records[-1].offset >= ends[tp] - 1:
                    todo.discard(tp)
        return out
    finally:
        await consumer.stop()


def then_a_cloudevents_consumer_reads_it_right(record: Any) -> str:
    """SDK round trips of one record; returns its ``sequence``."""
    fmt = JSONFormat()
    message = ce_kafka.KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value)
    event = ce_kafka.from_binary(message, fmt)
    ours = decode(record.headers, record.key, record.value)

    assert urlparse(event.get_source()).scheme == "https" and event.get_source() == ours.source
    assert TYPE.match(event.get_type()) and event.get_dataschema() == schema_uri(event.get_type())
    assert event.get_extension("partitionkey") == record.key.decode() == ours.key
    assert event.get_subject() == ours.subject and event.get_time() == ours.time
    assert int(event.get_extension("streamversion")) == ours.sequence
    sequence: str = event.get_extension("sequence")
    assert int(sequence) == ours.position and len(sequence) == 20

    # the chain recomputes from the CloudEvent alone
    a = event.get_attributes()
    assert link_hash(position=int(sequence), prev_hash=a["prevhash"], event_id=a["id"], type_name=a["type"],
                     source=a["source"], subject=a["subject"], version=int(a["streamversion"]),
                     time=format_time(a["time"]), actor=a["actor"], correlation_id=a["correlationid"],
                     causation_id=a.get("causationid"), key=a["partitionkey"],
                     body=orjson.dumps(event.get_data(), option=orjson.OPT_SORT_KEYS)) == a["hash"]

    # binary mode back to Kafka, and structured mode there and back: the same event for our decoder
    binary = ce_kafka.to_binary(event, fmt)
    again = decode(list(binary.headers.items()), as_bytes(binary.key), binary.value)
    assert (again.id, again.event, again.time, again.position, again.hash) == (
        ours.id, ours.event, ours.time, ours.position, ours.hash)
    structured = ce_kafka.to_structured(event, fmt)
    assert ce_kafka.from_structured(structured, fmt).get_attributes() == a
    mine = decode(list(structured.headers.items()), as_bytes(structured.key), structured.value)
    assert (mine.id, mine.event, mine.position, mine.subject) == (ours.id, ours.event, ours.position, ours.subject)
    return sequence


def as_bytes(key: str | bytes | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key  # the SDK hands the key back as text


async def test_every_record_of_a_month_converts_with_the_official_sdk_and_sequence_sorts(
    pool: asyncpg.Pool, settings: Settings, review_store: EventStore, feed: DeclarationsFeed,  # noqa: F811
) -> None:
    await a_month_through_its_whole_life(pool, settings, review_store, feed)

    seen = 0
    for topic, store_pool in ((DECLARATIONS.name(settings), feed.pool), (REVIEW.name(settings), pool)):
        records = await records_of(settings, topic)
        by_partition: dict[int, list[str]] = {}
        for partition, record in records:
            by_partition.setdefault(partition, []).append(then_a_cloudevents_consumer_reads_it_right(record))
        for sequences in by_partition.values():  # the topic's order: each partition in chain order
            assert sequences == sorted(sequences)
        everything = sorted(s for ss in by_partition.values() for s in ss)
        assert [int(s) for s in everything] == list(range(1, len(records) + 1))  # one source, no gap, no repeat
        async with store_pool.acquire() as conn:
            chained, legacy = await read_store(conn, topic)
        links, unchained, _ = await read_topic(settings, topic)
        report = compare(chained, links, legacy_store=legacy, unchained=unchained)
        assert report.ok, report.problems[:3]
        seen += len(records)
    print(f"\n{seen} records converted by the CloudEvents SDK (binary and structured) and back")
    assert seen >= 40
