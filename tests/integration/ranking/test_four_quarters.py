"""A county year on real Kafka and Postgres, given / when / then: ties, joiners, four quarters,
a correction across a boundary seen by a dashboard subscriber, and a byte-identical rebuild."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import asyncpg

from services.ranking.feed import Feed
from services.ranking.projection import RankingProjection
from services.ranking.tables import ENTRIES
from shared import replay
from shared.envelope import source_for
from shared.relay import Relay
from shared.settings import Settings
from tests.integration.ranking.support import County, Outbox, eventually, live_runner

OLD = dt.date(2024, 12, 1)
PM, CADRE = ("party_member",), ("community_cadre",)
# party members' monthly points: tie_a and tie_b share 5th place of the year; weak is always last
PARTY = {"p1": 30, "p2": 28, "p3": 26, "p4": 24, "tie_a": 20, "tie_b": 20, "p7": 10, "p8": 8, "p9": 6, "p10": 5,
         "weak": -2}
CADRES = {"k_star": 50, "k_almost": 40, "k2": 35, "k3": 30, "k4": 20, "k5": 10, "k6": 1}
NAMES = {"p1": "王一", "p2": "王二", "p3": "张三", "p4": "李四", "tie_a": "赵甲", "tie_b": "钱乙", "p7": "孙七",
         "p8": "周八", "p9": "吴九", "p10": "郑十", "weak": "冯弱", "late": "陈新", "k_star": "吉星",
         "k_almost": "罗差", "k2": "何二", "k3": "杨三", "k4": "朱四", "k5": "秦五", "k6": "许六"}


def month_points(month: str) -> dict[tuple[str, str], int]:
    points = {(s, "party_member"): p for s, p in PARTY.items()}
    points |= {(s, "community_cadre"): p for s, p in CADRES.items()}
    if month >= "2025-06":
        points[("late", "party_member")] = 100
    if month >= "2025-10":  # Q4: k_almost drops to 4th (k_star 50, k2 35, k3 30, k_almost 25)
        points[("k_almost", "community_cadre")] = 25
    return points


async def consequences(pool: asyncpg.Pool) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in await pool.fetch("select subject_id, consequence from rk_consequences"):
        out.setdefault(r["consequence"], set()).add(r["subject_id"])
    return out


async def test_four_quarters(settings: Settings, pool: asyncpg.Pool) -> None:
    declarations, review = await Outbox.start(settings, "declarations"), await Outbox.start(settings, "review")
    county = County(declarations, review)
    runner, _ = await live_runner(pool, settings)
    received: list[tuple[str, dict[str, Any]]] = []
    feed = Feed(settings)
    feed.publish = lambda name, payload: received.append((name, payload))  # type: ignore[method-assign]
    feed.clients.add(asyncio.Queue())  # a dashboard is watching (with none, the feed decodes nothing)
    relay = Relay(pool, settings, source_for("ranking", settings))
    try:
        # given: the roster, one party member joining in mid-May, and twelve certified months
        await county.register([(s, NAMES[s], PM, OLD, "male") for s in PARTY]
                              + [("late", NAMES["late"], PM, dt.date(2025, 5, 15), "female")]
                              + [(s, NAMES[s], CADRE, OLD, "female" if s == "k2" else "male") for s in CADRES])
        for m in range(1, 13):
            await county.certify(f"2025-{m:02d}", month_points(f"2025-{m:02d}"))
        await runner.catch_up()

        # then: standard competition ranking with the tie at 5th, the joiner not ranked for Q2 and the year
        year = {r["subject_id"]: r for r in await pool.fetch(
            f"select e.* from rk_ranking_lists l cross join lateral {ENTRIES} "
            "where scope = 'c-01' and category = 'party_member' and period = '2025'")}
        assert (year["tie_a"]["rank"], year["tie_b"]["rank"], year["p7"]["rank"]) == (5, 5, 7)
        assert (year["late"]["rank"], year["late"]["not_ranked"]) == (None, "joined_mid_period")
        q2 = await pool.fetchrow(f"select e.* from rk_ranking_lists l cross join lateral {ENTRIES} "
                                 "where scope = 'c-01' and period = '2025-Q2' and subject_id = 'late'")
        q3 = await pool.fetchrow(f"select e.* from rk_ranking_lists l cross join lateral {ENTRIES} "
                                 "where scope = 'c-01' and period = '2025-Q3' and subject_id = 'late'")
        assert q2["not_ranked"] == "joined_mid_period" and q3["rank"] == 1
        # and: the consequences
        got = await consequences(pool)
        assert got["excellent_eligible"] == {"p1", "p2", "p3", "p4", "tie_a", "tie_b"}
        assert got["promotion_priority"] == {"k_star", "k2"}  # k_almost was 4th in Q4 (k2 3rd, then 2nd)
        assert "weak" in got["eligibility_lost"] and {"k6", "k5", "k4", "k3"} <= got["eligibility_lost"]
        assert "k_almost" not in got["eligibility_lost"]

        # given: a dashboard subscriber on the ranking topic
        await feed.broker.start()
        await asyncio.sleep(2)  # the subscriber joins at the latest offset
        async with pool.acquire() as conn:
            while await relay.publish_batch(conn):
                pass
        # when: a correction in a certified month drops tie_b below 5th
        await county.correct("2025-12", "tie_b", "party_member", -5)
        await runner.catch_up()
        async with pool.acquire() as conn:
            while await relay.publish_batch(conn):
                pass

        # then: the consequence changed, an event was appended and the subscriber received it
        assert "tie_b" not in (await consequences(pool))["excellent_eligible"]
        withdrawn = await pool.fetchval("select count(*) from events where type like '%ConsequenceWithdrawn%'")
        assert withdrawn == 1

        async def heard() -> bool:
            return any(n == "ConsequenceWithdrawn" and p["data"]["subject_id"] == "tie_b" for n, p in received)
        took = await eventually(heard, 15, "the dashboard subscriber to receive ConsequenceWithdrawn")
        print(f"\nfeed received the withdrawal {took:.3f}s after the relay published it")
        assert any(n == "RankingChanged" and p["data"]["period"] == "2025" for n, p in received)

        # and: replaying the same log (no redelivery effect): no ranking event is appended twice
        before = await pool.fetchval("select count(*) from events")
        await runner.catch_up()
        assert await pool.fetchval("select count(*) from events") == before

        # when: rebuilt from offset 0 into a scratch schema
        built = await replay.rebuild(pool, RankingProjection(), settings)
        async with pool.acquire() as conn:
            live = await replay.describe(conn, RankingProjection(), "public")
        # then: byte-identical rankings and consequences, and the rebuild appended nothing
        assert built.digests == live[1], (built.digests, live[1])
        assert await pool.fetchval("select count(*) from events") == before
    finally:
        await feed.broker.stop()
        await relay.close()
        await declarations.close()
        await review.close()
