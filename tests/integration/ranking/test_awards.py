"""An item is awarded once: a second award of the same item under another event id is dead-lettered with
its cause, and the month counts the first. A subject registered again in another community leaves the
rankings of the first."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from services.ranking.recompute import certified_months
from shared.events.review import MonthCertified, PointsAwarded, certification_digest
from shared.settings import Settings
from tests.integration.ranking.support import T0, County, Outbox, live_runner
from tests.integration.test_dead_letters import dead_letter_reasons

pytestmark = pytest.mark.integration


def award(points: int) -> PointsAwarded:
    return PointsAwarded(item_id="c-01-i1", community_id="c-01", month="2026-01", subject_id="s-1",
                         category="resident", dimension="community_building", rule_code="CB01", points=points)


async def test_given_an_item_awarded_twice_when_applied_then_the_second_is_dead_lettered_and_the_first_counts(
        pool: asyncpg.Pool, settings: Settings) -> None:
    # given: review's log awards item c-01-i1 twice (two events), then certifies the month with the first award
    review = await Outbox.start(settings, "review")
    first = award(3)
    closing = MonthCertified(community_id="c-01", month="2026-01", count=1, total=3,
                             digest=certification_digest([first]), signed_by=("sec-1", "lg-2"), certified_at=T0)
    await review.publish("community-c-01", "c-01", [first, award(9), closing])
    await review.close()
    # when: the ranking projection applies it
    runner, _ = await live_runner(pool, settings)
    await runner.catch_up()
    # then: the second award is dead-lettered with the cause, the first is the item's award, the month counts
    reasons = await dead_letter_reasons(settings, expect=1)
    assert len(reasons) == 1 and "PointsAwarded" in reasons[0] and "rk_awards_pkey" in reasons[0]
    assert await pool.fetchval("select points from rk_awards where item_id = 'c-01-i1'") == 3
    async with pool.acquire() as conn:
        assert await certified_months(conn) == {"c-01": {"2026-01"}}


async def test_given_a_subject_re_registered_in_another_community_when_applied_then_the_old_community_drops_it(
        pool: asyncpg.Pool, settings: Settings) -> None:
    # given: s-1 and s-2 ranked in c-01's certified month, c-02 certified too
    declarations, review = await Outbox.start(settings, "declarations"), await Outbox.start(settings, "review")
    old, new = County(declarations, review, "c-01"), County(declarations, review, "c-02")
    await old.register([("s-1", "张三", ("resident",), dt.date(2025, 1, 1), "male"),
                        ("s-2", "李四", ("resident",), dt.date(2025, 1, 1), "female")])
    await new.register([("s-3", "王五", ("resident",), dt.date(2025, 1, 1), "male")])
    await old.certify("2026-01", {("s-1", "resident"): 5, ("s-2", "resident"): 3})
    await new.certify("2026-01", {("s-3", "resident"): 4})
    runner, _ = await live_runner(pool, settings)
    await runner.catch_up()
    assert await listed(pool, "c-01") == ["s-1", "s-2"]
    # when: s-1 is registered again, in c-02
    await new.register([("s-1", "张三", ("resident",), dt.date(2025, 1, 1), "male")])
    await runner.catch_up()
    await declarations.close()
    await review.close()
    # then: c-01's ranking lost s-1, c-02's has it (its points were c-01's: 0 here); the county counts them once
    assert await listed(pool, "c-01") == ["s-2"]
    assert await listed(pool, "c-02") == ["s-3", "s-1"]
    assert await listed(pool, "county") == ["s-1", "s-3", "s-2"]


async def listed(pool: asyncpg.Pool, scope: str) -> list[str]:
    ids = await pool.fetchval("select subject_ids from rk_ranking_lists where scope = $1 and category = 'resident' "
                              "and period = '2026-01'", scope)
    return list(ids)
