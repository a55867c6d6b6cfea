"""A burst of certifications (a month end, or a catch-up after an outage) ranks the county once, when
the live runner has caught up with the log; the communities are ranked batch by batch as before."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg

from services.ranking.projection import RankingProjection
from shared import replay
from shared.events.declarations import (
    CommunityRegistered,
    SubjectCategoriesChanged,
    SubjectMovedOut,
    SubjectRegistered,
)
from shared.events.ranking import COUNTY
from shared.settings import Settings
from tests.integration.ranking.support import County, Outbox, eventually, live_runner

OLD = dt.date(2024, 12, 1)
COMMUNITIES = [f"c-{i:02d}" for i in range(1, 7)]
MONTH = "2026-10"


async def test_given_six_certifications_on_the_log_when_the_live_runner_reads_them_then_the_county_is_ranked_once(
        settings: Settings, pool: asyncpg.Pool) -> None:
    declarations, review = await Outbox.start(settings, "declarations"), await Outbox.start(settings, "review")
    runner, _ = await live_runner(pool, settings)
    runner.batch_records = 40  # a certification is 21 records: several full batches before the last
    stop = asyncio.Event()
    try:
        # given: six communities' rosters and certified months, all on the log before the service reads
        for n, community in enumerate(COMMUNITIES):
            county = County(declarations, review, community)
            people = [(f"{community}-p{i}", f"居民{n}{i}", ("party_member",), OLD, "male") for i in range(20)]
            await county.register(people)
            await county.certify(MONTH, {(sid, "party_member"): (i * 7 + n) % 11 for i, (sid, *_) in
                                         enumerate(people)})

        # when: the live runner reads the burst
        task = asyncio.create_task(runner.run(stop))
        await eventually(lambda: _county_ranked(pool), 60, "the county ranked")
        await eventually(lambda: _settled(pool), 60, "nothing put off")
        stop.set()
        await task

        # then: each community's rankings were said as their months came; the county's once, with all six
        said = await pool.fetch(
            "select stream_id, version from ranking_emitted where stream_id like 'ranking-county-%'")
        assert said and all(r["version"] == 1 for r in said), said
        months = await pool.fetch("select months from rk_ranking_digests where scope = 'county'")
        assert {len(r["months"]) for r in months} == {1}
        ranked = await pool.fetchval("select ranked from rk_ranking_digests where scope = 'county' and period = $1",
                                     MONTH)
        assert ranked == 6 * 20
        community_said = await pool.fetchval("select count(*) from ranking_emitted where stream_id like 'ranking-c-%'")
        assert community_said == 6 * 3  # month, quarter and year of each community
        # and: each community's ranking events were caused by an event of its own community (a batch holds
        # parts of several certifications): its MonthCertified, or its roster when the roster was read after
        # the certification (the two topics interleave as they come); the county's by one of them
        own: dict[str, set[uuid.UUID]] = {}
        for outbox in (declarations, review):
            for r in await outbox.pool.fetch("select key, event_id from events"):
                own.setdefault(r["key"], set()).add(r["event_id"])
        causes = await pool.fetch("select key, causation_id from events where stream_id like 'ranking-%'")
        assert {r["key"] for r in causes} == {*COMMUNITIES, COUNTY}
        assert all(r["causation_id"] in own[r["key"]] for r in causes if r["key"] != COUNTY), causes
        assert {r["causation_id"] for r in causes if r["key"] == COUNTY} <= set().union(*own.values())

        # and: a rebuild from offset 0 is byte-identical, with nothing left put off
        built = await replay.rebuild(pool, RankingProjection(), settings)
        async with pool.acquire() as conn:
            live = await replay.describe(conn, RankingProjection(), "public")
        assert built.digests == live[1]
        assert built.rows["rk_county_pending"] == 0
    finally:
        stop.set()
        await declarations.close()
        await review.close()


async def _county_ranked(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval(
        "select ranked = 120 from rk_ranking_digests where scope = 'county' and period = $1", MONTH))


async def _settled(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("select count(*) = 0 from rk_county_pending"))


async def test_given_a_roster_changed_twice_in_one_batch_when_applied_then_the_last_word_stands(
        settings: Settings, pool: asyncpg.Pool) -> None:
    declarations = await Outbox.start(settings, "declarations")
    runner, _ = await live_runner(pool, settings)
    try:
        # given: registered, moved to other categories, registered again (a correction) and moved out, in order
        await declarations.publish("community-c-01", "c-01", [
            CommunityRegistered(community_id="c-01", name="海雀社区"),
            *(SubjectRegistered(subject_id=s, community_id="c-01", kind="person", name=n, categories=("resident",),
                                gender="female", registered_on=OLD) for s, n in (("a", "甲"), ("b", "乙"))),
            SubjectCategoriesChanged(subject_id="a", community_id="c-01", categories=("volunteer", "family"),
                                     changed_on=OLD),
            SubjectRegistered(subject_id="a", community_id="c-01", kind="person", name="甲（更正）",
                              categories=("party_member",), gender="female", registered_on=OLD),
            SubjectRegistered(subject_id="b", community_id="c-01", kind="person", name="乙（更正）",
                              categories=("resident", "employed"), gender="male", registered_on=OLD),
            SubjectMovedOut(subject_id="b", community_id="c-01", moved_out_on=dt.date(2026, 3, 1)),
        ])
        # when: the projection applies them in one batch
        await runner.catch_up()
        # then: each subject is as the last event about it says
        rows = {r["subject_id"]: r for r in await pool.fetch("select * from rk_subjects")}
        a, b = rows["a"], rows["b"]
        assert (a["name"], a["categories"], a["moved_out_on"]) == ("甲（更正）", ["party_member"], None)
        assert (b["name"], b["categories"], b["gender"], b["moved_out_on"]) == (
            "乙（更正）", ["resident", "employed"], "male", dt.date(2026, 3, 1))
    finally:
        await declarations.close()
