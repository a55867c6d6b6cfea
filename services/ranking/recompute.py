"""Recompute the rankings a batch touched, from the read model's tables alone (no clock, no order).

The rules are the pure domain's (``domain/ranking.py``, ``consequences.py``, ``talks.py``). The
rankings themselves are computed where the rows are: ``RANK`` is ``domain.ranking.rank`` and
``DIGEST`` is ``domain.ranking.digest`` in SQL (a property test holds them equal), so a county of
200,000 subjects never travels to Python. Only rankings whose digest changed are rewritten, and
of those only the rows that differ.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import asyncpg

from services.ranking.domain import periods
from services.ranking.domain.consequences import CADRE, PARTY_MEMBER, Rankings, consequences
from services.ranking.domain.periods import Period
from services.ranking.domain.ranking import JOINED_MID_PERIOD, MOVED_OUT_MID_PERIOD, Entry, Member, rank
from services.ranking.domain.talks import NOMINEES, TALK_BOTTOM, TALK_TOP, nominees, talks_due
from services.ranking.settings import ranking_rules
from shared.events.ranking import COUNTY
from shared.vocabulary import CATEGORIES, TEN_MOST_BEAUTIFUL

FEMALE = ("female", "女")


@dataclass(frozen=True)
class Ranked:
    """A recomputed ranking, by its digest (its entries are in ``rk_rankings``)."""

    scope: str  # community id or COUNTY
    category: str
    period: str
    digest: str
    ranked: int
    not_ranked: int
    months: tuple[str, ...]


@dataclass
class Changed:
    rankings: list[Ranked]
    consequences: dict[str, dict[tuple[str, str], str]]  # community -> (subject, consequence) -> basis


# domain.ranking.rank for every target (scope, period) at once: every member of each category, 1 + how
# many score strictly better (from the top and from the bottom) among those registered for the whole
# period; the others not ranked, with the reason. Scores per community month are summed once.
RANK = f"""
create temp table rk_next on commit drop as
with target(scope, period, first_day, last_day) as (
    select * from unnest($1::text[], $2::text[], $3::date[], $4::date[])),
pair(scope, period, community_id, month) as (select * from unnest($5::text[], $6::text[], $7::text[], $8::text[])),
month_scores as materialized (
    select community_id, month, subject_id, category, sum(points)::bigint as score from (
        select a.community_id, a.month, a.subject_id, a.category, a.points from rk_awards a
        where (a.community_id, a.month) in (select community_id, month from pair)
        union all
        select r.community_id, r.month, r.subject_id, r.category, r.delta from rk_corrections r
        where (r.community_id, r.month) in (select community_id, month from pair)
    ) s group by community_id, month, subject_id, category),
scores as (select p.scope, p.period, m.subject_id, m.category, sum(m.score)::bigint as score
           from month_scores m join pair p using (community_id, month) group by 1, 2, 3, 4),
members as (
    select t.scope, t.period, s.subject_id, c.category, coalesce(sc.score, 0)::bigint as score,
           case when s.registered_on > t.first_day then '{JOINED_MID_PERIOD}'
                when s.moved_out_on <= t.last_day then '{MOVED_OUT_MID_PERIOD}' end as not_ranked
    from target t join rk_subjects s on t.scope = '{COUNTY}' or s.community_id = t.scope
    cross join lateral unnest(s.categories) as c(category)
    left join scores sc on (sc.scope, sc.period, sc.subject_id, sc.category)
                           = (t.scope, t.period, s.subject_id, c.category)
    where c.category = any($9::text[]))
select scope, category, period, subject_id, score,
       (case when not_ranked is null then rank() over (partition by scope, period, category, not_ranked is null
                                                       order by score desc) end)::integer as rank,
       (case when not_ranked is null then rank() over (partition by scope, period, category, not_ranked is null
                                                       order by score) end)::integer as from_bottom,
       not_ranked
from members"""
# domain.ranking.digest: sha256 over "subject\tscore\trank\tfrom_bottom\tnot_ranked\n" in ranking order
# (ranked by rank then subject id, then the not ranked by subject id; ids compared by code point).
DIGEST = """
create temp table rk_next_digests on commit drop as
select n.scope, n.category, n.period, encode(sha256(convert_to(string_agg(
           n.subject_id || E'\\t' || n.score || E'\\t' || coalesce(n.rank::text, 'None') || E'\\t'
           || coalesce(n.from_bottom::text, 'None') || E'\\t' || coalesce(n.not_ranked, 'None') || E'\\n', ''
           order by n.rank nulls last, n.subject_id collate "C"), 'UTF8')), 'hex') as digest,
       count(n.rank)::integer as ranked, (count(*) - count(n.rank))::integer as not_ranked,
       string_to_array(m.months, ',') as months
from rk_next n join unnest($1::text[], $2::text[], $3::text[]) as m(scope, period, months)
     on m.scope = n.scope and m.period = n.period
group by n.scope, n.category, n.period, m.months"""
# Write what differs: rankings gone from a recomputed (scope, period) (found by the digests: every ranking
# has one), then all the rows of the rankings whose digest changed (a shifted rank touches most of them),
# then the digests.
WRITE = """
analyze rk_next;
analyze rk_next_digests;
create temp table rk_gone on commit drop as
select o.scope, o.category, o.period from rk_ranking_digests o
    join (select distinct scope, period from rk_next_digests) p using (scope, period)
    where not exists (select from rk_next_digests d where (d.scope, d.category, d.period)
                                                           = (o.scope, o.category, o.period));
delete from rk_rankings r using rk_gone g where (r.scope, r.category, r.period) = (g.scope, g.category, g.period);
delete from rk_ranking_digests r using rk_gone g
    where (r.scope, r.category, r.period) = (g.scope, g.category, g.period);
create temp table rk_changed on commit drop as
select d.scope, d.category, d.period from rk_next_digests d left join rk_ranking_digests o
    using (scope, category, period) where o.digest is distinct from d.digest;
delete from rk_rankings r using rk_changed c where (r.scope, r.category, r.period) = (c.scope, c.category, c.period);
insert into rk_rankings select n.* from rk_next n join rk_changed c using (scope, category, period)
    order by n.scope, n.category, n.period, n.rank, n.subject_id;
insert into rk_ranking_digests select * from rk_next_digests on conflict (scope, category, period) do update
    set digest = excluded.digest, ranked = excluded.ranked, not_ranked = excluded.not_ranked, months = excluded.months
    where (rk_ranking_digests.digest, rk_ranking_digests.ranked, rk_ranking_digests.not_ranked,
           rk_ranking_digests.months) is distinct from (excluded.digest, excluded.ranked, excluded.not_ranked,
                                                        excluded.months)"""


async def certified_months(conn: asyncpg.Connection) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for r in await conn.fetch("select community_id, month from rk_months where complete"):
        out[r["community_id"]].add(r["month"])
    return out


def touched_periods(dirty: dict[str, set[str]]) -> dict[str, set[Period]]:
    """The month, quarter and year of each dirty month, for its community and the county (once)."""
    touched: dict[str, set[Period]] = defaultdict(set)
    for community, months in dirty.items():
        for m in months:
            touched[community].update(periods.containing(m))
            touched[COUNTY].update(periods.containing(m))
    return touched


async def rank_touched(conn: asyncpg.Connection, dirty: dict[str, set[str]], certified: dict[str, set[str]]
                       ) -> list[Ranked]:
    """Rank every touched (scope, period) into ``rk_next`` / ``rk_next_digests`` and write what changed."""
    targets = []
    for scope, touched in sorted(touched_periods(dirty).items()):
        for period in sorted(touched):
            pairs = sorted((c, m) for c, ms in certified.items() for m in ms if m in period.months
                           and (scope == COUNTY or c == scope))
            if pairs:
                targets.append((scope, period, pairs))
    if not targets:
        return []
    # the planner, without statistics on the CTEs, may nest loops over 200,000 members x their scores
    await conn.execute("set local enable_nestloop = off")
    await conn.execute(RANK, [s for s, _, _ in targets], [p.code for _, p, _ in targets],
                       [p.first_day for _, p, _ in targets], [p.last_day for _, p, _ in targets],
                       *zip(*[(s, p.code, c, m) for s, p, pairs in targets for c, m in pairs], strict=True),
                       list(CATEGORIES))
    await conn.execute("reset enable_nestloop")
    await conn.execute(DIGEST, [s for s, _, _ in targets], [p.code for _, p, _ in targets],
                       [",".join(sorted({m for _, m in pairs})) for _, _, pairs in targets])
    await conn.execute(WRITE)
    rows = await conn.fetch("select * from rk_next_digests")
    await conn.execute("drop table rk_next, rk_next_digests, rk_gone, rk_changed")
    return [Ranked(r["scope"], r["category"], r["period"], r["digest"], r["ranked"], r["not_ranked"],
                   tuple(r["months"])) for r in rows]


async def run(conn: asyncpg.Connection, dirty: dict[str, set[str]]) -> Changed:
    certified = await certified_months(conn)
    ranked = await rank_touched(conn, dirty, certified)
    changed = Changed(ranked, {})
    for community in sorted(dirty):
        await talks_and_nominations(conn, community, sorted(dirty[community]))
        changed.consequences[community] = await consequences_of(conn, community, certified.get(community, set()))
    return changed


async def entries_of(conn: asyncpg.Connection, scope: str, categories: list[str], period_codes: list[str],
                     where: str = "true", *args: object) -> dict[tuple[str, str], list[Entry]]:
    """(category, period) -> entries in ranking order, those matching ``where``."""
    rows = await conn.fetch(
        f"""select category, period, subject_id, score, rank, from_bottom, not_ranked from rk_rankings
            where scope = $1 and category = any($2::text[]) and period = any($3::text[]) and ({where})
            order by category, period, rank nulls last, subject_id collate "C" """,
        scope, categories, period_codes, *args)
    out: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    for r in rows:
        out[(r["category"], r["period"])].append(
            Entry(r["subject_id"], r["score"], r["rank"], r["from_bottom"], r["not_ranked"]))
    return out


async def talks_and_nominations(conn: asyncpg.Connection, community: str, months: list[str]) -> None:
    head = max(TALK_TOP, NOMINEES)
    for month in months:
        await conn.execute("delete from rk_talks_due where community_id = $1 and month = $2", community, month)
        await conn.execute("delete from rk_nominations where community_id = $1 and month = $2", community, month)
        # the heads and tails of the month's rankings: all that talks_due and nominees look at
        ends = await entries_of(conn, community, list(CATEGORIES), [month], "rank <= $4 or from_bottom <= $5",
                                head, TALK_BOTTOM)
        talks, noms = [], []
        for category in CATEGORIES:
            entries = ends.get((category, month), [])
            talks += [(community, month, category, s, t) for s, t in talks_due(entries)]
            if category in TEN_MOST_BEAUTIFUL:
                noms += [(community, month, category, e.subject_id, e.rank, e.score) for e in nominees(entries)]
        women = await conn.fetch(
            """select s.subject_id, s.registered_on, s.moved_out_on, coalesce(sum(r.score), 0)::bigint as total
               from rk_subjects s left join rk_rankings r
                    on r.subject_id = s.subject_id and r.scope = $1 and r.period = $2
               where s.community_id = $1 and s.kind = 'person' and s.gender = any($3::text[])
               group by s.subject_id""", community, month, list(FEMALE))
        if women:
            members = [Member(w["subject_id"], community, w["registered_on"], w["moved_out_on"]) for w in women]
            by_total = rank(members, {w["subject_id"]: w["total"] for w in women}, periods.month(month))
            noms += [(community, month, "woman", e.subject_id, e.rank, e.score) for e in nominees(by_total)]
        await conn.executemany("insert into rk_talks_due values ($1, $2, $3, $4, $5) on conflict do nothing", talks)
        await conn.executemany("insert into rk_nominations values ($1, $2, $3, $4, $5, $6)", noms)


async def consequences_of(conn: asyncpg.Connection, community: str, certified: set[str]
                          ) -> dict[tuple[str, str], str]:
    years = sorted({m[:4] for m in certified})
    closed = sorted({q for m in certified for q in [periods.containing(m)[1]] if set(q.months) <= certified})
    year = periods.year(int(years[-1])) if years else None
    wanted = [q.code for q in closed] + ([year.code] if year else [])
    now: Rankings = await entries_of(conn, community, [PARTY_MEMBER, CADRE], wanted)
    result = consequences(now, closed, year, ranking_rules())
    await conn.execute("delete from rk_consequences where community_id = $1", community)
    await conn.executemany("insert into rk_consequences values ($1, $2, $3, $4)",
                           [(community, s, c, b) for (s, c), b in sorted(result.items())])
    return result
