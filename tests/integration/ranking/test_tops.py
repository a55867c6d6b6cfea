"""A ranking event carries its ranking's top n, ties included (``emit.tops``): the count is taken from the
shortest prefix of the list that holds it, so lists are built around the prefixes' lengths."""

from __future__ import annotations

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ranking.emit import tops
from services.ranking.projection import RankingProjection
from services.ranking.recompute import Ranked
from shared import projection as projections

STEPS = (1, 2, 63, 64, 65, 1023, 1024, 1025, 16383, 16384, 16385)  # tie groups around the prefixes' lengths


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(groups=st.lists(st.sampled_from(STEPS), max_size=4), not_ranked=st.sampled_from((0, 1, 70, 2000)),
       data=st.data())
async def test_property_the_top_is_every_entry_ranked_at_most_n_in_order(
        pool: asyncpg.Pool, groups: list[int], not_ranked: int, data: st.DataObject) -> None:
    # given: a ranking of tie groups (each group's rank is its first position), the not ranked last, and an
    # n at, just before or just after a group's rank, or any
    ranks: list[int | None] = []
    for size in groups:
        ranks += [len(ranks) + 1] * size
    ranks += [None] * not_ranked
    starts = sorted({r for r in ranks if r is not None}) or [1]
    n = max(1, data.draw(st.sampled_from(starts)) + data.draw(st.sampled_from((-1, 0, 1)))
            if data.draw(st.booleans()) else data.draw(st.integers(1, 40000)))
    ids = [f"s{i:06d}" for i in range(len(ranks))]
    async with pool.acquire() as conn:
        undo = conn.transaction()
        await undo.start()
        try:
            await projections.migrate(conn, RankingProjection())
            await conn.execute(
                "insert into rk_ranking_lists values ('county', 'resident', '2026-11', $1, $2, $3, $4, $5)",
                ids, [len(ranks) - i for i in range(len(ranks))], ranks, ranks,
                [None if r is not None else "joined_mid_period" for r in ranks])

            # when: its top n is taken for the event
            got = await tops(conn, [Ranked("county", "resident", "2026-11", "d", len(ranks), 0, ())], n)
        finally:
            await undo.rollback()

    # then: exactly the entries ranked at most n, in ranking order
    expected = [(ids[i], r) for i, r in enumerate(ranks) if r is not None and r <= n]
    assert [(e.subject_id, e.rank) for e in got.get(("county", "resident", "2026-11"), ())] == expected
