"""A site reads the review topic only in its community's partition: the rest of the county's review
stream is never fetched, its read models hold its community, and a replay reads the same share."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from deploy.sites import with_sites
from services.declarations.certified import CertifiedMonths
from shared import projection as projections
from shared import replay
from shared.envelope import encode_body, headers, source_for
from shared.events.review import MonthCertified
from shared.kafka import client_config
from shared.projection import ProjectionRunner
from shared.settings import Settings
from shared.sites import Site, partition_of
from shared.topics import REVIEW
from tests.integration.test_spine import wait_for

pytestmark = pytest.mark.integration

SITE = Site("hz01", "c-hz01")
COMMUNITIES = [SITE.community_id, *(f"c-{n:02d}" for n in range(2, 25))]  # 24 communities over the partitions
AT = dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)


async def certify(settings: Settings, month: str) -> None:
    """Every community's month certified on the review topic, keyed by community id as review writes it."""
    producer = AIOKafkaProducer(**client_config(settings))
    await producer.start()
    try:
        for community in COMMUNITIES:
            ev = MonthCertified(community_id=community, month=month, count=0, total=0, digest="0" * 64,
                                signed_by=("secretary", "member"), certified_at=AT)
            event_id = uuid.uuid4()
            await producer.send_and_wait(
                REVIEW.name(settings), value=encode_body(ev), key=community.encode(),
                headers=headers(event_id=event_id, source=source_for("review", settings), type_name=ev.type_name(),
                                stream_id=f"community-{community}", version=1, time=AT, actor="secretary",
                                correlation_id=event_id, causation_id=None, prev_hash="0" * 64, digest="f" * 64))
    finally:
        await producer.stop()


async def rows(pool: asyncpg.Pool, schema: str = "public") -> list[tuple[str, str]]:
    return [tuple(r) for r in await pool.fetch(
        f'select community_id, month from "{schema}".certified_months order by 1, 2')]


async def test_given_a_site_when_the_county_certifies_then_it_fetches_only_its_communitys_partition(
    pool: asyncpg.Pool, settings: Settings,
) -> None:
    at_site = with_sites(settings, [SITE]).model_copy(update={"site": SITE.name})
    async with pool.acquire() as conn:
        await projections.migrate(conn, CertifiedMonths())
    partitions = settings.topic_partitions
    ours = partition_of(SITE.community_id.encode(), partitions)
    sharing = sum(partition_of(c.encode(), partitions) == ours for c in COMMUNITIES)
    assert partitions > 1 and sharing < len(COMMUNITIES)  # the test means something only if others land elsewhere

    # given October certified before the site starts, and November while it runs
    await certify(settings, "2026-10")
    runner = ProjectionRunner(pool, CertifiedMonths(), at_site)
    stop = asyncio.Event()
    live = asyncio.create_task(runner.run(stop))
    try:
        await wait_for(lambda: _holds(pool, 1), 30, "October at the site")
        await certify(settings, "2026-11")
        await wait_for(lambda: _holds(pool, 2), 30, "November at the site")
        lag = await runner.lag()
    finally:
        stop.set()
        await live

    # then the site holds its own community, fetched nothing outside its partition and stored offsets only there
    assert await rows(pool) == [(SITE.community_id, "2026-10"), (SITE.community_id, "2026-11")]
    assert runner.fetched == 2 * sharing, (runner.fetched, sharing)
    stored = await pool.fetch("select topic, partition, next_offset from projection_offsets")
    assert [(r["topic"], r["partition"], r["next_offset"]) for r in stored] == [
        (REVIEW.name(settings), ours, 2 * sharing)]
    assert lag == 0

    # and a replay from offset 0 with the site's settings reads the same share into the same rows
    built = await replay.rebuild(pool, CertifiedMonths(), at_site)
    assert await rows(pool, built.schema) == await rows(pool)
    assert built.events == 2


async def _holds(pool: asyncpg.Pool, n: int) -> bool:
    return bool(await pool.fetchval("select count(*) from certified_months") == n)
