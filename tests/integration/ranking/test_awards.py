"""An item is awarded once: a second award of the same item under another event id is dead-lettered with
its cause, and the month counts the first."""

from __future__ import annotations

import asyncpg
import pytest

from services.ranking.recompute import certified_months
from shared.events.review import MonthCertified, PointsAwarded, certification_digest
from shared.settings import Settings
from tests.integration.ranking.support import T0, Outbox, live_runner
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
