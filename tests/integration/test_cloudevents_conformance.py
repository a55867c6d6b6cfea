"""Every record of a realistic run read right by the official CloudEvents SDK (``cloudevents``).

Given a community month through its whole life (declarations, verification, certification,
notice, objections, corrections, on both topics), every record converts to a CloudEvent in
Kafka binary mode and back, and through structured mode and back; the attributes are what the
spec asks (absolute ``source``, reverse-DNS ``type``, ``dataschema``, ``partitionkey`` = the
Kafka key), the chain recomputes from the CloudEvent alone, and ``sequence`` sorts as text in
chain order within each source.
"""

from __future__ import annotations

import asyncpg
import pytest

from shared.settings import Settings
from shared.store import EventStore
from shared.topics import DECLARATIONS, REVIEW
from shared.verify import compare, read_store, read_topic
from tests.integration.review.support import DeclarationsFeed
from tests.integration.review.test_certification_on_the_log import a_month_through_its_whole_life
from tests.support.conformance import (
    records_of,
    sequence_sorts_in_chain_order,
    then_a_cloudevents_consumer_reads_it_right,
)

pytestmark = pytest.mark.integration


async def test_every_record_of_a_month_converts_with_the_official_sdk_and_sequence_sorts(
    pool: asyncpg.Pool, settings: Settings, review_store: EventStore, feed: DeclarationsFeed,
) -> None:
    await a_month_through_its_whole_life(pool, settings, review_store, feed)

    seen = 0
    for topic, store_pool in ((DECLARATIONS.name(settings), feed.pool), (REVIEW.name(settings), pool)):
        records = await records_of(settings, topic)
        converted = [then_a_cloudevents_consumer_reads_it_right(record, partition) for partition, record in records]
        assert list(sequence_sorts_in_chain_order(converted).values()) == [len(records)]  # one source
        async with store_pool.acquire() as conn:
            chained, legacy = await read_store(conn, topic)
        links, unchained, _ = await read_topic(settings, topic)
        report = compare(chained, links, legacy_store=legacy, unchained=unchained)
        assert report.ok, report.problems[:3]
        seen += len(records)
    print(f"\n{seen} records converted by the CloudEvents SDK (binary and structured) and back")
    assert seen >= 40
