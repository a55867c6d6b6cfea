"""Benchmark: certify one community month of 100,000 items, through to the last event on Kafka.

    .venv/bin/python bench/certify.py [--items 100000]

Starts a throw-away Kafka + PostgreSQL (deploy.testing.start_test_stack). The review service's
items table and verification state are seeded directly with N verified items (that is the
declarations topic's and the recorders' work, not what is measured). The secretary signs first
(not timed). Timed: the second member's signature, which completes the quorum (one Postgres
transaction: load the month, decide, the signature + N PointsAwarded + MonthCertified appended
at the version decided on), and the outbox relay until every one of those events is acknowledged
by Kafka (acks=all).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy.testing import throwaway_stack
from services.review import handlers, state
from services.review.domain.certification import awards_of
from services.review.domain.commands import Rules, SignMonth
from services.review.domain.model import Signer
from services.review.items import ItemsProjection
from services.review.settings import ReviewSettings
from shared import projection as projections
from shared import store as event_store
from shared.envelope import source_for
from shared.events import load_catalogue
from shared.events.review import MonthCertified, certification_digest
from shared.kafka import consumer_config
from shared.projection import partitions_of
from shared.relay import Relay
from shared.settings import Settings
from shared.store import EventStore, Recorded
from shared.topics import REVIEW, create_topics

COMMUNITY, MONTH = "c-bench", "2026-11"
NOW = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)  # the last day of the month in Asia/Shanghai
CATEGORIES = ("resident", "party_member", "volunteer", "family", "employed", "building_head")
DIMENSIONS = ("community_building", "volunteer_service", "civility_hygiene", "livelihood_employment")


async def seed(pool: asyncpg.Pool, n: int) -> None:
    rows = [(f"{COMMUNITY}-{i:07d}", COMMUNITY, MONTH, dt.date(2026, 11, 1 + i % 30), f"s-{i % 5000:05d}",
             CATEGORIES[i % len(CATEGORIES)], DIMENSIONS[i % len(DIMENSIONS)], f"R{i % 40:02d}", 1 + i % 9,
             "declaration", "app", "义务劳动", f"rec-{i % 4}", f"s-{i % 5000:05d}", NOW) for i in range(n)]
    async with pool.acquire() as conn, conn.transaction():
        await conn.copy_records_to_table("items", records=rows, columns=[
            "item_id", "community_id", "month", "occurred_on", "subject_id", "category", "dimension", "rule_code",
            "points", "kind", "channel", "description", "entered_by", "declared_by", "recorded_at"])
        await conn.execute("insert into review_status select item_id, community_id, month, 'verified' from items")


async def on_kafka(settings: Settings) -> tuple[int, str]:
    """How many records the review topic holds, and the type of the last one (all on the community's partition)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [REVIEW.name(settings)])
        ends = await consumer.end_offsets(tps)
        tp = max(ends, key=lambda t: ends[t])
        consumer.assign([tp])
        consumer.seek(tp, ends[tp] - 1)
        last = (await consumer.getone()).headers
        return sum(ends.values()), dict(last)["ce_type"].decode()
    finally:
        await consumer.stop()


async def run(bootstrap: str, dsn: str, n: int) -> None:
    load_catalogue()
    admin = await asyncpg.connect(dsn)
    await admin.execute('create database "bench_review"')
    await admin.close()
    base = dsn.rpartition("/")[0]
    settings = Settings(database_url=f"{base}/bench_review", kafka_bootstrap_servers=bootstrap,
                        topic_namespace=f"bench{uuid.uuid4().hex[:6]}")
    await create_topics(settings)
    pool = await asyncpg.create_pool(settings.database_url, min_size=2, max_size=4)
    async with pool.acquire() as conn:
        await event_store.migrate(conn)
        await projections.migrate(conn, ItemsProjection())
        await conn.execute(state.SCHEMA)
    await seed(pool, n)
    print(f"seeded {n:,} verified items directly into the review DB (items + review_status); not timed")
    store = EventStore(source_for("review"), REVIEW.name(settings))
    relay = Relay(pool, settings, source_for("review"))
    signers = (Signer("sec", "secretary", COMMUNITY), Signer("lg-1", "leading_group", COMMUNITY))
    review = ReviewSettings()

    def rules(community_id: str) -> Rules:
        return review.rules(community_id, settings.timezone)

    async with pool.acquire() as conn:
        month = await state.load(conn, COMMUNITY, month_items=[MONTH])
    digest = certification_digest(awards_of(month.items_of(MONTH)))
    async with pool.acquire() as conn, conn.transaction():  # the secretary signs first: not timed
        await handlers.handle(conn, store, SignMonth(COMMUNITY, MONTH, digest, signers[0], NOW), rules,
                              Recorded(actor="sec", time=NOW, correlation_id=uuid.uuid4()))

    started = time.perf_counter()
    async with pool.acquire() as conn, conn.transaction():
        envs = (await handlers.handle(conn, store, SignMonth(COMMUNITY, MONTH, digest, signers[1], NOW), rules,
                                      Recorded(actor="lg-1", time=NOW, correlation_id=uuid.uuid4()))).envelopes
    committed = time.perf_counter()
    async with pool.acquire() as conn, pool.acquire() as marker:
        await relay.drain(conn, marker)  # what the service's relay runs: pipelined
    published = time.perf_counter()
    await relay.close()

    records, last_type = await on_kafka(settings)
    closing = envs[-1].event
    assert isinstance(closing, MonthCertified)
    assert records == n + 3, f"{records} records on Kafka, expected {n + 3} (two signatures, awards, closing)"
    assert last_type == MonthCertified.type_name(), last_type
    total = published - started
    print(f"certify command (one transaction, {len(envs):,} events): {committed - started:6.2f} s")
    print(f"relay to Kafka (acks=all, idempotent):               {published - committed:6.2f} s")
    print(f"total: {total:.2f} s for {n:,} items = {n / total:,.0f} items/s")
    print(f"on Kafka: {records:,} records, the last one {last_type}")
    print(f"MonthCertified count={closing.count} total={closing.total} digest={closing.digest[:16]}…")
    await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    args = parser.parse_args()
    with throwaway_stack("bench-certify-") as handle:
        asyncio.run(run(handle.bootstrap, handle.dsn, args.items))


if __name__ == "__main__":
    main()
