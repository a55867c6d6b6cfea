"""CloudEvents conformance of our Kafka records, checked with the official SDK (``cloudevents``).

Shared by the integration test (a month built in-process) and the e2e test (a full demo run
against the services as processes): read a topic whole, round-trip each record through the SDK
in Kafka binary and structured modes, recompute its chain link from the CloudEvent alone, and
check that ``sequence`` sorts as text in chain order within each source, 1..N with no gap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat

from shared.envelope import GENESIS_HASH, decode, format_time, link_hash
from shared.events import schema_uri
from shared.kafka import consumer_config
from shared.settings import Settings

TYPE = re.compile(r"^cn\.gov\.hezhang\.points\.[a-z]+\.[A-Z][A-Za-z]+\.v[0-9]+$")


async def records_of(settings: Settings, topic: str) -> list[tuple[int, Any]]:
    """Every record of ``topic`` up to its end offsets, as (partition, record), each partition in order."""
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


@dataclass(frozen=True, slots=True)
class Converted:
    """What the SDK read from one record: enough to check the order of ``sequence``."""

    partition: int
    source: str
    type: str
    sequence: str
    prev_hash: str
    hash: str


def then_a_cloudevents_consumer_reads_it_right(record: Any, partition: int = -1) -> Converted:
    """SDK round trips of one record (binary and structured Kafka modes, and back to our decoder)."""
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
    return Converted(partition, a["source"], a["type"], sequence, a["prevhash"], a["hash"])


def as_bytes(key: str | bytes | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key  # the SDK hands the key back as text


def sequence_sorts_in_chain_order(events: list[Converted]) -> dict[str, int]:
    """``events`` in topic order (each partition in offset order): within each partition ``sequence``
    rises as text; within each source, sorted as text, it is 1..N with no gap or repeat, and each
    event's ``prevhash`` is the hash of the one before it (the first links to the genesis hash), so
    text order is chain order. Returns the number of events per source."""
    by_partition: dict[int, list[str]] = {}
    by_source: dict[str, list[Converted]] = {}
    for e in events:
        by_partition.setdefault(e.partition, []).append(e.sequence)
        by_source.setdefault(e.source, []).append(e)
    for partition, sequences in by_partition.items():  # the topic's order: each partition in chain order
        assert sequences == sorted(sequences), f"partition {partition}: sequence out of order"
    for source, chain in by_source.items():
        chain = sorted(chain, key=lambda e: e.sequence)  # as text
        assert [int(e.sequence) for e in chain] == list(range(1, len(chain) + 1)), f"{source}: gap or repeat"
        prev = GENESIS_HASH
        for e in chain:
            assert e.prev_hash == prev, f"{source}: sequence {e.sequence} does not follow the one before it"
            prev = e.hash
    return {source: len(chain) for source, chain in by_source.items()}
