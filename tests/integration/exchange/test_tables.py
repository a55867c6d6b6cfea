"""The tables hold to the domain's fold (events applied once or twice give the same rows), and to the
review topic's rule: awards count only once their matching ``MonthCertified`` is applied."""

from __future__ import annotations

import asyncpg
import pytest

from services.exchange import state, tables
from services.exchange.domain.evolve import fold
from shared.events import Event
from shared.events.exchange import PriceChanged, RedeemedLine
from shared.events.review import ItemRejected, PointsCorrected
from tests.integration.exchange.support import certified_month, pending_item, subject
from tests.unit.exchange.support import (
    DAY,
    T0,
    donated,
    given,
    listed,
    redeem_command,
    shopper,
    when_redeeming,
    when_returning,
)

pytestmark = pytest.mark.integration


async def test_given_events_applied_twice_then_the_tables_match_the_fold(pool: asyncpg.Pool) -> None:
    # given a listing, a price change, a donation, a redemption of two lines and its return
    state0 = given([listed("rice", 3), listed("oil", 5), donated("rice", 10), donated("oil", 4, "d2")], shopper())
    redeemed = when_redeeming(state0, "s-1", redeem_command(("rice", 2), ("oil", 1), ("rice", 1)))
    assert isinstance(redeemed, list)
    returned = when_returning(fold(state0, redeemed), "r1")
    assert isinstance(returned, list)
    change = PriceChanged(item_id="rice", community_id="c-01", change_id="p1", price=4, effective_from=T0)
    events = [listed("rice", 3), listed("oil", 5), change, donated("rice", 10), donated("oil", 4, "d2"), *redeemed]
    async with pool.acquire() as conn:
        await conn.execute(tables.SCHEMA)
        await conn.execute("insert into members values ('s-1', 'c-01', '居民', '{resident}', 'HZ-X', true)")
        await conn.execute("insert into balances (subject_id, community_id, awarded) values ('s-1', 'c-01', 100)")
        # when applied twice
        for _ in range(2):
            async with conn.transaction():
                await tables.apply(conn, events)
        # then stock, balance and usage are what the fold says
        shelves = await state.shelves_for_update(conn, ["rice", "oil"])
        assert {k: v.in_stock for k, v in shelves.items()} == {"rice": 7, "oil": 3}
        assert shelves["rice"].item.price_at(T0) == 4
        who = (await state.shoppers_for_update(conn, ["HZ-X"], ["rice", "oil"])).get("HZ-X")
        assert who is not None and who.spendable == 100 - 3 * 3 - 5 and who.used == {("rice", "2026-12"): 3,
                                                                                    ("oil", "2026-12"): 1}
        for _ in range(2):
            await tables.apply(conn, returned)
        who = (await state.shoppers_for_update(conn, ["HZ-X"], ["rice"])).get("HZ-X")
        assert who is not None and who.spendable == 100 and who.used == {("rice", "2026-12"): 0}
        r = await state.redemption_for_update(conn, "r1")
        assert r is not None and r.returned and isinstance(r.lines[0], RedeemedLine)
        assert await conn.fetchval("select sum(quantity) from movements") == 0
        assert DAY.month == 12


async def test_given_awards_then_they_count_only_with_a_matching_month_certified_and_pending_follows_review(
        pool: asyncpg.Pool) -> None:
    a, b = subject(1), subject(2)
    month = certified_month("c-01", "2026-11", {a.subject_id: 7, b.subject_id: 3})
    *awards, closing = month
    tampered = [closing.model_copy(update={"total": 11}), closing.model_copy(update={"digest": "0" * 64}),
                closing.model_copy(update={"count": 1})]

    async def figures(conn: asyncpg.Connection) -> dict[str, tuple[int, int]]:
        rows = await conn.fetch("""select b.subject_id, b.awarded + b.corrected - b.redeemed + b.returned as s,
                                          (select coalesce(sum(points), 0) from points_items p
                                            where p.subject_id = b.subject_id and p.state = 'submitted') as pending
                                   from balances b""")
        return {r["subject_id"]: (r["s"], r["pending"]) for r in rows}

    async with pool.acquire() as conn:
        await conn.execute(tables.SCHEMA)
        # given the roster, two items in review (one is the award's item) and the month's awards
        await tables.apply(conn, [a, b, pending_item(a.subject_id, 7), pending_item(b.subject_id, 4)])
        await conn.execute("update points_items set item_id = $1 where item_id = $2",
                           f"c-01-2026-11-{a.subject_id}", f"pend-{a.subject_id}")
        await tables.apply(conn, awards)
        # then the awards alone change nothing spendable, and a MonthCertified that does not match (its total,
        # digest or count) is ignored
        assert await figures(conn) == {a.subject_id: (0, 7), b.subject_id: (0, 4)}
        for wrong in tampered:
            await tables.apply(conn, [wrong])
            assert await figures(conn) == {a.subject_id: (0, 7), b.subject_id: (0, 4)}
        # when the matching one arrives (twice), the points are spendable once and leave "pending"
        await tables.apply(conn, [closing, closing])
        assert await figures(conn) == {a.subject_id: (7, 0), b.subject_id: (3, 4)}
        # a correction counts once; a rejected item leaves pending
        correction = PointsCorrected(correction_id="x1", community_id="c-01", month="2026-12", item_id="i",
                                     item_month="2026-11", subject_id=b.subject_id, category="resident",
                                     dimension="community_building", rule_code="CB01", delta=-2, reason="异议属实")
        await tables.apply(conn, [correction, correction, ItemRejected(
            item_id=f"pend-{b.subject_id}", community_id="c-01", month="2026-12", reason="不实")])
        assert await figures(conn) == {a.subject_id: (7, 0), b.subject_id: (1, 0)}


async def test_given_items_and_a_whole_certification_in_one_batch_then_the_rows_are_as_applied_one_by_one(
        pool: asyncpg.Pool) -> None:
    # given a roster, items (one declared twice: the later wins), a month's awards (one re-sent) and its closing
    a, b = subject(1), subject(2)
    *awards, closing = certified_month("c-01", "2026-11", {a.subject_id: 7, b.subject_id: 3})
    again = pending_item(a.subject_id, 6).model_copy(update={"item_id": f"pend-{a.subject_id}", "points": 9})
    events = [a, b, pending_item(a.subject_id, 6), pending_item(b.subject_id, 4), again, *awards, awards[0], closing,
              pending_item(b.subject_id, 2, "c-01").model_copy(update={"item_id": "late"})]

    async def rows_after(calls: list[list[Event]]) -> tuple[list[tuple[object, ...]], ...]:
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            try:
                await conn.execute(tables.SCHEMA)
                for call in calls:
                    await tables.apply(conn, call)
                out = []
                for t in ("balances", "points_items", "held_awards", "certified_months"):
                    out.append([tuple(r) for r in await conn.fetch(f"select * from {t} order by 1, 2")])
                return tuple(out)
            finally:
                await tx.rollback()

    # when applied in one call and one event per call, then the same rows
    one_call = await rows_after([events])
    assert one_call == await rows_after([[ev] for ev in events])
    balances, items, held, certified = one_call
    assert [(r[0], r[2]) for r in balances] == [(a.subject_id, 7), (b.subject_id, 3)] and held == []
    assert (f"pend-{a.subject_id}", a.subject_id, 9, "submitted") in items
    assert ("late", b.subject_id, 2, "submitted") in items
    assert certified == [("c-01", "2026-11")]
