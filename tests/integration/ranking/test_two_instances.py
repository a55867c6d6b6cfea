"""Two instances of the ranking service (processes, one consumer group) while a month of awards and
``MonthCertified`` events flows; one is killed with -9 mid-month. Afterwards the live rankings and
consequences are byte-identical to a rebuild from offset 0 into a scratch schema, and the ranking
topic carries each ranking digest once: nothing said twice, nothing lost, every stream in order."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import time
from collections import Counter, defaultdict
from contextlib import ExitStack

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from services.ranking.projection import RankingProjection
from shared import replay
from shared.kafka import client_config, consumer_config
from shared.projection import partitions_of
from shared.settings import Settings
from shared.sites import group_prefix
from shared.topics import DECLARATIONS, RANKING, REVIEW
from tests.integration.ranking.support import County, Outbox, eventually
from tests.support.services import running_service

pytestmark = pytest.mark.integration

COMMUNITIES, SUBJECTS, MONTHS = 6, 50, ("2025-01", "2025-02")  # 300 people, 12 certifications
OLD = dt.date(2024, 12, 1)


def roster(community: int) -> list[tuple[str, str, tuple[str, ...], dt.date, str]]:
    cats = (("party_member",), ("community_cadre",), ("volunteer",))
    return [(f"c{community}-s{i:03d}", f"居民{community}-{i:03d}", cats[i % 3], OLD, "female" if i % 2 else "male")
            for i in range(SUBJECTS)]


def points(community: int, month: int) -> dict[tuple[str, str], int]:
    """Scores that tie now and then and reorder from month to month (so rankings change)."""
    out = {}
    for sid, _, cats, _, _ in roster(community):
        n = int(sid.rsplit("s", 1)[1])
        out[(sid, cats[0])] = (n * 7 + month * 13 + community) % 40 - 3
    return out


async def group_members(settings: Settings, group: str) -> int:
    admin = AIOKafkaAdminClient(**client_config(settings))
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    groups = [g for response in described for g in response.groups]
    return sum(len(g[5]) for g in groups if g[2] == "Stable")


async def end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, topics)
        return {(tp.topic, tp.partition): o for tp, o in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def ranking_records(settings: Settings) -> list[dict[str, str]]:
    """Every record on the ranking topic: its ce_ headers and the digest in its body."""
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    out: list[dict[str, str]] = []
    try:
        tps = await partitions_of(consumer, [RANKING.name(settings)])
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        todo = {tp for tp in tps if ends[tp] > 0}
        while todo:
            for tp, records in (await consumer.getmany(*todo, timeout_ms=1000)).items():
                for r in records:
                    h = {k: v.decode() for k, v in r.headers}
                    out.append(h | {"digest": orjson.loads(r.value).get("digest", ""), "partition": str(tp.partition)})
                if records and records[-1].offset >= ends[tp] - 1:
                    todo.discard(tp)
    finally:
        await consumer.stop()
    return out


async def test_given_two_ranking_instances_when_one_is_killed_mid_month_then_rankings_equal_a_rebuild(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    declarations, review = await Outbox.start(settings, "declarations"), await Outbox.start(settings, "review")
    counties = [County(declarations, review, f"c-{c:02d}") for c in range(COMMUNITIES)]
    group = f"{group_prefix(settings)}projection.ranking"  # as the projection runner names it
    with ExitStack() as running:
        # given: the roster, and two instances of the ranking service sharing the partitions
        for c, county in enumerate(counties):
            await county.register(roster(c))
        a = running.enter_context(running_service("ranking", settings, timeout=120))
        running.enter_context(running_service("ranking", settings, timeout=120))
        await eventually(lambda: _members_are(settings, group, 2), 120, "two instances in the consumer group")

        # when: a month of certifications flows and instance a is killed with -9 once some are applied
        async def certify_all() -> None:
            for m, month in enumerate(MONTHS):
                for c, county in enumerate(counties):
                    await county.certify(month, points(c, m))
                    await asyncio.sleep(0.3)
        flowing = asyncio.create_task(certify_all())
        await eventually(lambda: _complete_months_over(pool, 3), 180, "some months ranked")
        killed_at = time.monotonic()
        os.killpg(a.process.pid, signal.SIGKILL)
        a.process.wait(10)
        applied_at_kill = await pool.fetchval("select count(*) from rk_months where complete")
        await flowing
        assert applied_at_kill < COMMUNITIES * len(MONTHS), "the kill came after the month: not mid-month"

        # then: the survivor applies the rest and its relay publishes everything it appended
        ends = await end_offsets(settings, [DECLARATIONS.name(settings), REVIEW.name(settings)])
        await eventually(lambda: _caught_up(pool, ends), 240, "the survivor catching up")
        await eventually(lambda: _all_published(pool), 120, "the survivor's relay publishing")
        caught_up = time.monotonic() - killed_at
        await asyncio.sleep(1)  # anything applied or published twice would show now
        assert await pool.fetchval("select count(*) from rk_months where complete") == COMMUNITIES * len(MONTHS)

        # and: a rebuild from offset 0 into a scratch schema is byte-identical to the live model
        built = await replay.rebuild(pool, RankingProjection(), settings)
        async with pool.acquire() as conn:
            live = await replay.describe(conn, RankingProjection(), "public")
        assert built.digests == live[1], (built.digests, live[1])
        assert built.rows["rk_ranking_lists"] > 0 and built.rows["rk_consequences"] > 0

    # and: on the ranking topic each (stream, digest) was said by one event, streams without gaps
    records = await ranking_records(settings)
    ids = {r["ce_id"] for r in records}
    appended = await pool.fetchval("select count(*) from events")
    assert len(ids) == appended, (len(ids), appended)  # every appended event published, none invented
    said = Counter((r["ce_subject"], r["digest"]) for r in {r["ce_id"]: r for r in records}.values()
                   if ".RankingChanged." in r["ce_type"])
    assert said and max(said.values()) == 1, [k for k, n in said.items() if n > 1][:5]
    versions: dict[str, list[int]] = defaultdict(list)
    for r in {r["ce_id"]: r for r in records}.values():
        versions[r["ce_subject"]].append(int(r["ce_streamversion"]))
    for stream, got in versions.items():
        assert sorted(got) == list(range(1, len(got) + 1)), (stream, got)
    copies = len(records) - len(ids)
    print(f"\n{COMMUNITIES * len(MONTHS)} certifications for {COMMUNITIES * SUBJECTS} people, two instances; one "
          f"killed with -9 after {applied_at_kill} months were ranked; the survivor caught up {caught_up:.1f} s "
          f"after the kill; rebuild byte-identical ({sum(built.rows.values()):,} rows); {len(said)} ranking "
          f"digests each said once; {len(ids)} ranking events ({copies} relay re-sends of the same id)")
    await declarations.close()
    await review.close()


async def _members_are(settings: Settings, group: str, n: int) -> bool:
    return await group_members(settings, group) == n


async def _complete_months_over(pool: asyncpg.Pool, n: int) -> bool:
    return bool(await pool.fetchval("select count(*) from rk_months where complete") >= n)


async def _caught_up(pool: asyncpg.Pool, ends: dict[tuple[str, int], int]) -> bool:
    rows = await pool.fetch("select topic, partition, next_offset from projection_offsets where projection = 'ranking'")
    at = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
    return all(at.get(tp, 0) >= end for tp, end in ends.items() if end > 0)


async def _all_published(pool: asyncpg.Pool) -> bool:
    return not await pool.fetchval("select count(*) from events where published_at is null")
