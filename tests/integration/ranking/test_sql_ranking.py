"""The rankings computed in Postgres are the pure domain's: ``recompute`` (SQL) against ``domain.ranking``
on random rosters, scores, ties and partial registrations, in a real database."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ranking import county, recompute
from services.ranking.domain import periods
from services.ranking.domain.ranking import Entry, Member, digest, rank
from services.ranking.projection import RankingProjection
from services.ranking.tables import ENTRIES
from shared import projection as projections
from shared.events.ranking import COUNTY

MONTH = "2026-05"
IDS = ("a", "B", "b", "a1", "a10", "a9", "é", "Z", "Ω", "中", "s-1", "s_1")  # code point order differs from locales
CATS = ("party_member", "community_cadre")
# each period's first and last day, and the days either side
DAYS = tuple(d + dt.timedelta(days=k) for d in (dt.date(2026, 1, 1), dt.date(2026, 4, 1), dt.date(2026, 5, 1),
                                                 dt.date(2026, 4, 30), dt.date(2026, 5, 31), dt.date(2026, 6, 30),
                                                 dt.date(2026, 12, 31)) for k in (-1, 0, 1))

subjects = st.dictionaries(
    st.sampled_from(IDS),
    st.tuples(st.sampled_from(("c-01", "c-02")), st.lists(st.sampled_from(CATS), min_size=1, max_size=2, unique=True),
              st.sampled_from(DAYS), st.none() | st.sampled_from(DAYS)),
    min_size=1)
points = st.dictionaries(st.tuples(st.sampled_from(IDS), st.sampled_from(CATS)),
                         st.lists(st.integers(-3, 3), min_size=1, max_size=3))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(roster=subjects, awards=points, months=st.sampled_from(((MONTH,), ("2026-04", MONTH))))
async def test_property_sql_rankings_and_digests_are_the_domain_ones(
        pool: asyncpg.Pool, roster: dict[str, tuple[str, list[str], dt.date, dt.date | None]],
        awards: dict[tuple[str, str], list[int]], months: tuple[str, ...]) -> None:
    async with pool.acquire() as conn:
        undo = conn.transaction()  # each example starts from empty tables
        await undo.start()
        try:
            await check(conn, roster, awards, months)
        finally:
            await undo.rollback()


async def check(conn: asyncpg.Connection, roster: dict[str, tuple[str, list[str], dt.date, dt.date | None]],
                awards: dict[tuple[str, str], list[int]], months: tuple[str, ...]) -> None:
    # given: a roster, awards (ties, negatives, awards to subjects of other categories) in certified months
    await projections.migrate(conn, RankingProjection())
    await conn.executemany("insert into rk_subjects values ($1, $2, 'person', $1, $3, null, $4, $5)",
                           [(s, c, cats, joined, out) for s, (c, cats, joined, out) in roster.items()])
    community = {s: c for s, (c, *_) in roster.items()}
    rows = [(f"{s}-{cat}-{m}-{i}", community.get(s, "c-01"), m, s, cat, "d", "R", p)
            for (s, cat), ps in awards.items() for m in months for i, p in enumerate(ps)]
    await conn.executemany("insert into rk_awards values ($1, $2, $3, $4, $5, $6, $7, $8)", rows)
    await conn.executemany(
        "insert into rk_months values ($1, $2, 0, 0, '', true, now(), '{}', '{}', $3)",
        [(c, m, uuid.uuid4()) for c in ("c-01", "c-02") for m in months])

    # when: the months are recomputed in SQL
    await recompute.run(conn, {"c-01": set(months), "c-02": set(months)})

    # then: every ranking reads as the domain ranks it, in order, with the domain's digest
    for scope in ("c-01", "c-02", COUNTY):
        for period in {p for m in months for p in periods.containing(m)}:
            for cat in CATS:
                members = [Member(s, c, joined, out) for s, (c, cats, joined, out) in sorted(roster.items())
                           if cat in cats and scope in (c, COUNTY)]
                scores = {s: sum(ps) * sum(m in period.months for m in months)
                          for (s, c), ps in awards.items() if c == cat}
                await stored_as(conn, scope, cat, period, rank(members, scores, period))


async def stored_as(conn: asyncpg.Connection, scope: str, cat: str, period: periods.Period,
                    expected: tuple[Entry, ...]) -> None:
    """The stored ranking reads as ``expected``, in order, with the domain's digest."""
    got = await conn.fetch(
        f"""select e.subject_id, e.score, e.rank, e.from_bottom, e.not_ranked
            from rk_ranking_lists l cross join lateral {ENTRIES}
            where scope = $1 and category = $2 and period = $3 order by e.position""",
        scope, cat, period.code)
    assert tuple(Entry(*r) for r in got) == expected
    head = await conn.fetchval("select digest from rk_ranking_digests where scope = $1 and "
                               "category = $2 and period = $3", scope, cat, period.code)
    assert head == (digest(expected) if expected else None)


async def test_given_a_category_left_by_everyone_when_recomputed_then_its_ranking_is_gone(
        pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():  # as the projection applies a batch
        await projections.migrate(conn, RankingProjection())
        await conn.executemany("insert into rk_subjects values ($1, 'c-01', 'person', $1, $2, null, $3, null)",
                               [("a", list(CATS), dt.date(2025, 1, 1)), ("b", [CATS[1]], dt.date(2025, 1, 1))])
        await conn.execute("insert into rk_months values ('c-01', $1, 0, 0, '', true, now(), '{}', '{}', $2)",
                           MONTH, uuid.uuid4())
        await recompute.run(conn, {"c-01": {MONTH}})
        # given: the cadres' rankings exist; when: nobody is a cadre any more and the month is recomputed
        await conn.execute("update rk_subjects set categories = '{party_member}'")
        await recompute.run(conn, {"c-01": {MONTH}})
        # then: no cadre ranking is left, in rows or digests; the party members' remain
        left = await conn.fetch("select category from rk_ranking_lists union select category from rk_ranking_digests")
        assert {r["category"] for r in left} == {"party_member"}


async def test_given_an_installation_from_before_month_scores_when_migrated_then_its_rankings_stand(
        pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await projections.migrate(conn, RankingProjection())
        await conn.executemany("insert into rk_subjects values ($1, 'c-01', 'person', $1, $2, null, $3, null)",
                               [(s, list(CATS), dt.date(2025, 1, 1)) for s in ("a", "b", "c")])
        await conn.executemany("insert into rk_awards values ($1, 'c-01', $2, $3, $4, 'd', 'R', $5)",
                               [("i1", MONTH, "a", CATS[0], 3), ("i2", MONTH, "b", CATS[0], 5),
                                ("i3", MONTH, "c", CATS[1], 2),
                                ("i4", "2026-06", "a", CATS[0], 9)])  # June: not certified
        await conn.execute("insert into rk_corrections values ('k1', 'c-01', $1, 'i2', $1, 'b', $2, 'd', -4, '更正', "
                           "'lg-1', now())", MONTH, CATS[0])
        await conn.execute("insert into rk_months values ('c-01', $1, 0, 0, '', true, now(), '{}', '{}', $2)",
                           MONTH, uuid.uuid4())
        await recompute.run(conn, {"c-01": {MONTH}})
        before = await conn.fetch("select * from rk_ranking_digests order by 1, 2, 3")
        scores = await conn.fetch("select * from rk_month_scores order by 1, 2, 3, 4")
        # given: an installation whose read model has no month scores yet
        await conn.execute("delete from rk_month_scores")
        # when: the service starts (its schema is run) and the month is recomputed without summing it again
        await projections.migrate(conn, RankingProjection())
        await recompute.run(conn, {"c-01": {MONTH}}, rescored=set())
        # then: the certified month's scores are back (June's award is not), and every ranking is as it was
        assert await conn.fetch("select * from rk_month_scores order by 1, 2, 3, 4") == scores
        assert [tuple(r) for r in scores] == [("c-01", MONTH, "a", CATS[0], 3), ("c-01", MONTH, "b", CATS[0], 1),
                                             ("c-01", MONTH, "c", CATS[1], 2)]
        assert await conn.fetch("select * from rk_ranking_digests order by 1, 2, 3") == before


COMMUNITIES = ("c-01", "c-02", "c-03")
county_roster = st.dictionaries(
    st.sampled_from(IDS),
    st.tuples(st.sampled_from(COMMUNITIES), st.lists(st.sampled_from(CATS), min_size=1, max_size=2, unique=True),
              st.sampled_from(DAYS), st.none() | st.sampled_from(DAYS)),
    min_size=1)
# (subject, category, the community it earned them in: its own, or one it lived in before)
county_points = st.dictionaries(st.tuples(st.sampled_from(IDS), st.sampled_from(CATS), st.sampled_from(COMMUNITIES)),
                                st.lists(st.integers(-3, 3), min_size=1, max_size=3))
certified_pairs = st.sets(st.tuples(st.sampled_from(COMMUNITIES), st.sampled_from(("2026-04", MONTH))), min_size=1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(roster=county_roster, awards=county_points, certified=certified_pairs,
       moves=st.dictionaries(st.sampled_from(IDS), st.sampled_from(COMMUNITIES), max_size=3))
async def test_property_the_county_merged_from_community_rankings_is_the_domain_one(
        pool: asyncpg.Pool, roster: dict[str, tuple[str, list[str], dt.date, dt.date | None]],
        awards: dict[tuple[str, str, str], list[int]], certified: set[tuple[str, str]],
        moves: dict[str, str]) -> None:
    async with pool.acquire() as conn:
        undo = conn.transaction()
        await undo.start()
        try:
            await check_county(conn, roster, awards, certified, moves)
        finally:
            await undo.rollback()


async def check_county(conn: asyncpg.Connection, roster: dict[str, tuple[str, list[str], dt.date, dt.date | None]],
                       awards: dict[tuple[str, str, str], list[int]], certified: set[tuple[str, str]],
                       moves: dict[str, str]) -> None:
    # given: communities ranked (some with no certified month), points earned in other communities than the
    # subject's own, and subjects re-registered elsewhere after their old community was last ranked
    await projections.migrate(conn, RankingProjection())
    await conn.executemany("insert into rk_subjects values ($1, $2, 'person', $1, $3, null, $4, $5)",
                           [(s, c, cats, joined, out) for s, (c, cats, joined, out) in roster.items()])
    months = sorted({m for _, m in certified})
    await conn.executemany("insert into rk_awards values ($1, $2, $3, $4, $5, 'd', 'R', $6)",
                           [(f"{s}-{cat}-{c}-{m}-{i}", c, m, s, cat, p) for (s, cat, c), ps in awards.items()
                            for m in months for i, p in enumerate(ps)])
    await conn.executemany("insert into rk_months values ($1, $2, 0, 0, '', true, now(), '{}', '{}', $3)",
                           [(c, m, uuid.uuid4()) for c, m in sorted(certified)])
    dirty = {c: {m for cc, m in certified if cc == c} for c, _ in certified}
    await recompute.run(conn, dirty, county=False)
    moved = {s: c for s, c in moves.items() if s in roster}
    for s, c in moved.items():
        await conn.execute("update rk_subjects set community_id = $2 where subject_id = $1", s, c)
    if now := {c: dirty[c] for c in moved.values() if c in dirty}:
        await recompute.run(conn, now, county=False)  # the new community ranked again, the old one not

    # when: the county is ranked from the community rankings
    touched = {p for m in months for p in periods.containing(m)}
    merged = await county.merge(conn, touched, await recompute.certified_months(conn))

    # then: it was merged (not the fallback), and every county ranking reads as the domain ranks it
    assert merged is not None
    community = {s: moved.get(s, c) for s, (c, *_) in roster.items()}
    for period in touched:
        for cat in CATS:
            members = [Member(s, community[s], joined, out) for s, (_, cats, joined, out) in sorted(roster.items())
                       if cat in cats]
            scores: dict[str, int] = {}
            for (s, c, earned_in), ps in awards.items():
                if c == cat:
                    times = sum((earned_in, m) in certified for m in period.months if m in months)
                    scores[s] = scores.get(s, 0) + sum(ps) * times
            await stored_as(conn, COUNTY, cat, period, rank(members, scores, period))
