"""Recompute the rankings a batch touched, from the read model's tables alone (no clock, no order).

The rules are the pure domain's (``domain/ranking.py``, ``consequences.py``, ``talks.py``). The
rankings themselves are computed where the rows are: ``RANK`` is ``domain.ranking.rank`` and
``domain.ranking.digest`` in SQL (a property test holds them equal), so a county of 200,000
subjects never travels to Python. A ranking is stored as one row of lists (``rk_ranking_lists``),
rewritten only when its digest changed: a county ranking whose every rank moved costs one row. The
county's rankings, put off until the projection settles, are merged from the communities' (``county.py``),
with ``RANK`` the fallback.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import asyncpg

from services.ranking.domain import periods
from services.ranking.domain.consequences import CADRE, PARTY_MEMBER, Rankings, consequences
from services.ranking.domain.periods import Period
from services.ranking.domain.ranking import (
    JOINED_MID_PERIOD,
    MOVED_OUT_MID_PERIOD,
    Entry,
    Member,
    rank,
)
from services.ranking.domain.talks import NOMINEES, TALK_BOTTOM, TALK_TOP, nominees, talks_due
from services.ranking.settings import ranking_rules
from services.ranking.tables import ENTRIES, month_sums
from shared.events.ranking import COUNTY
from shared.logging import get_logger
from shared.vocabulary import CATEGORIES, TEN_MOST_BEAUTIFUL

log = get_logger("ranking.recompute")
FEMALE = ("female", "女")


@dataclass(frozen=True)
class Ranked:
    """A recomputed ranking, by its digest (its entries are in ``rk_ranking_lists``)."""

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


# domain.ranking.rank and domain.ranking.digest for every target (scope, period) at once, one row per
# ranking: every member of each category, 1 + how many score strictly better (from the top) or worse
# (from the bottom) among those registered for the whole period; the others not ranked, with the
# reason. A ranking is a number in the statement, g = target * 32 + the category's place in $9 (joins
# and groups on numbers, not on names). The ranks come from a tally of the scores (a few hundred rows),
# not from sorting the members. Every ranking's order (ranked by score, ties by subject id in code
# point order, then the not ranked by subject id) is one bigint: g, then the rank (the not ranked after
# every rank), then the subject's place in code point order among the subjects of the scopes ($12 bits
# each for the rank and the place: more than the subjects). Built from text, the same key sorted 25%
# slower at county size. The lists and the lines of the digest (sha256 over
# "subject\tscore\trank\tfrom_bottom\tnot_ranked\n") are aggregated per ranking in that order (all of
# them cut from one list of every ranking's entries instead, 18 communities took 6.3 s, not 4.2 s:
# slicing a list of text walks it from its start). Each target's subjects are found by a hash join on
# the community (a join on "the county, or this community" compared every subject with every target).
RANK = f"""
create temp table rk_next on commit drop as
with target(t, scope, period, first_day, last_day, months) as (
    select o::integer, s, p, f, l, m from unnest($1::text[], $2::text[], $3::date[], $4::date[], $5::text[])
    with ordinality as u(s, p, f, l, m, o)),
pair(t, community_id, month) as (select * from unnest($6::integer[], $7::text[], $8::text[])),
scores as materialized (  -- each ranking's score of a subject: its months' scores summed
    select p.t * 32 + array_position($9::text[], m.category) as g, m.subject_id, sum(m.score)::bigint as score
    from rk_month_scores m join pair p using (community_id, month)
    where m.community_id = any($10::text[]) and m.month = any($11::text[])  -- the index narrows, the join picks
      and m.category = any($9::text[])
    group by 1, 2),
subjects as materialized (  -- each subject's place in code point order (the ties' order)
    select subject_id, community_id, categories, registered_on, moved_out_on,
           row_number() over (order by subject_id collate "C")::bigint as place from rk_subjects
    where community_id = any(select scope from target) or exists (select from target where scope = '{COUNTY}')),
reach as (  -- each target's subjects: its community's (a hash join), or every one for the county
    select t.t, t.first_day, t.last_day, s.* from target t join subjects s on s.community_id = t.scope
    union all
    select t.t, t.first_day, t.last_day, s.* from target t cross join subjects s where t.scope = '{COUNTY}'),
members as materialized (
    select k.g, s.subject_id, s.place, coalesce(sc.score, 0)::bigint as score,
           case when s.registered_on > s.first_day then '{JOINED_MID_PERIOD}'
                when s.moved_out_on <= s.last_day then '{MOVED_OUT_MID_PERIOD}' end as not_ranked
    from reach s
    cross join lateral (select s.t * 32 + array_position($9::text[], c) as g from unnest(s.categories) as c
                        where c = any($9::text[])) as k
    left join scores sc on (sc.g, sc.subject_id) = (k.g, s.subject_id)),
tally as materialized (  -- how many members of a ranking have each score: ranks without sorting the members
    select g, not_ranked is null as ranked, score, count(*)::integer as n from members group by 1, 2, 3),
ranks as (
    select g, score,
           (sum(n) over (partition by g order by score desc rows unbounded preceding) - n + 1)::integer as rank,
           (sum(n) over (partition by g order by score rows unbounded preceding) - n + 1)::integer as from_bottom
    from tally where ranked),
ranked as (
    select m.g, m.subject_id, m.score, m.not_ranked, r.rank, r.from_bottom,
           -- the ranking's order as one number: ranking, rank (the not ranked last), place
           (m.g::bigint << (2 * $12)) | (coalesce(r.rank, (1::bigint << $12) - 1) << $12) | m.place as key
    from members m left join ranks r on m.not_ranked is null and (r.g, r.score) = (m.g, m.score)),
everyone as materialized (  -- each ranking's entries in order
    select g, array_agg(subject_id order by key) as subject_ids, array_agg(score order by key) as scores,
           array_agg(rank order by key) as ranks, array_agg(from_bottom order by key) as from_bottoms,
           array_agg(not_ranked order by key) as not_rankeds,
           array_agg(subject_id || E'\\t' || score || E'\\t' || coalesce(rank::text, 'None') || E'\\t'
                     || coalesce(from_bottom::text, 'None') || E'\\t' || coalesce(not_ranked, 'None') || E'\\n'
                     order by key) as lines
    from ranked group by g),
sizes as (select g, sum(n)::integer as n, coalesce(sum(n) filter (where ranked), 0)::integer as ranked
          from tally group by 1)
select t.scope, ($9::text[])[s.g % 32] as category, t.period,
       encode(sha256(convert_to(array_to_string(e.lines, ''), 'UTF8')), 'hex') as digest,
       s.ranked, s.n - s.ranked as not_ranked, string_to_array(t.months, ',') as months,
       e.subject_ids, e.scores, e.ranks, e.from_bottoms, e.not_rankeds
from sizes s join target t on t.t = s.g / 32 join everyone e using (g)"""
assert len(CATEGORIES) < 32, "RANK numbers a ranking target * 32 + category"

# Write what differs: rankings gone from a recomputed (scope, period) (found by the digests: every
# ranking has one), the lists of the rankings whose digest changed, then the digests.
WRITE = """
create temp table rk_gone on commit drop as
select o.scope, o.category, o.period from rk_ranking_digests o
    join (select distinct scope, period from rk_next) p using (scope, period)
    where not exists (select from rk_next d where (d.scope, d.category, d.period) = (o.scope, o.category, o.period));
delete from rk_ranking_lists r using rk_gone g where (r.scope, r.category, r.period) = (g.scope, g.category, g.period);
delete from rk_ranking_digests r using rk_gone g
    where (r.scope, r.category, r.period) = (g.scope, g.category, g.period);
insert into rk_ranking_lists select n.scope, n.category, n.period, n.subject_ids, n.scores, n.ranks, n.from_bottoms,
                                    n.not_rankeds
    from rk_next n left join rk_ranking_digests o using (scope, category, period)
    where o.digest is distinct from n.digest
    on conflict (scope, category, period) do update set subject_ids = excluded.subject_ids, scores = excluded.scores,
        ranks = excluded.ranks, from_bottoms = excluded.from_bottoms, not_rankeds = excluded.not_rankeds;
insert into rk_ranking_digests select scope, category, period, digest, ranked, not_ranked, months from rk_next
    on conflict (scope, category, period) do update
    set digest = excluded.digest, ranked = excluded.ranked, not_ranked = excluded.not_ranked, months = excluded.months
    where (rk_ranking_digests.digest, rk_ranking_digests.ranked, rk_ranking_digests.not_ranked,
           rk_ranking_digests.months) is distinct from (excluded.digest, excluded.ranked, excluded.not_ranked,
                                                        excluded.months)"""


async def certified_months(conn: asyncpg.Connection) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for r in await conn.fetch("select community_id, month from rk_months where complete"):
        out[r["community_id"]].add(r["month"])
    return out


def touched_periods(dirty: dict[str, set[str]], county: bool = True) -> dict[str, set[Period]]:
    """The month, quarter and year of each dirty month, for its community and the county (once)."""
    touched: dict[str, set[Period]] = defaultdict(set)
    for community, months in dirty.items():
        for m in months:
            touched[community].update(periods.containing(m))
            if county:
                touched[COUNTY].update(periods.containing(m))
    return touched


async def rank_touched(conn: asyncpg.Connection, touched_scopes: dict[str, set[Period]],
                       certified: dict[str, set[str]]) -> list[Ranked]:
    """Rank every touched (scope, period) into ``rk_next`` and write what changed."""
    targets = []
    for scope, touched in sorted(touched_scopes.items()):
        for period in sorted(touched):
            pairs = sorted((c, m) for c, ms in certified.items() for m in ms if m in period.months
                           and (scope == COUNTY or c == scope))
            if pairs:
                targets.append((scope, period, pairs))
    if not targets:
        return []
    # the planner, without statistics on the CTEs, may nest loops over 200,000 members x their scores or
    # sort 660,000 scores to sum them (the sorts that order the rankings are still made)
    bits = (await conn.fetchval("select count(*) from rk_subjects") + 1).bit_length()  # a rank or a place
    if (len(targets) + 1) * 32 >= 1 << (63 - 2 * bits):
        raise ValueError(f"{len(targets)} rankings of up to {bits} bits each do not fit in one sort key")
    await conn.execute("set local enable_nestloop = off; set local work_mem = '256MB'; set local enable_sort = off")
    started = time.perf_counter()
    await conn.execute(RANK, [s for s, _, _ in targets], [p.code for _, p, _ in targets],
                       [p.first_day for _, p, _ in targets], [p.last_day for _, p, _ in targets],
                       [",".join(sorted({m for _, m in pairs})) for _, _, pairs in targets],
                       *zip(*[(t, c, m) for t, (_, _, pairs) in enumerate(targets, 1) for c, m in pairs], strict=True),
                       list(CATEGORIES), sorted({c for _, _, pairs in targets for c, _ in pairs}),
                       sorted({m for _, _, pairs in targets for _, m in pairs}), bits)
    ranked_at = time.perf_counter()
    await conn.execute("reset enable_nestloop; reset work_mem; reset enable_sort")
    ranked = await write_next(conn)
    log.info("ranking.ranked", scopes=len(touched_scopes), targets=len(targets), rank_s=round(ranked_at - started, 3),
             write_s=round(time.perf_counter() - ranked_at, 3))
    return ranked


async def write_next(conn: asyncpg.Connection) -> list[Ranked]:
    """WRITE what the rankings in ``rk_next`` (RANK's or the county's merge) changed; those rankings."""
    await conn.execute(WRITE)
    rows = await conn.fetch("select scope, category, period, digest, ranked, not_ranked, months from rk_next")
    await conn.execute("drop table rk_next, rk_gone")
    return [Ranked(r["scope"], r["category"], r["period"], r["digest"], r["ranked"], r["not_ranked"],
                   tuple(r["months"])) for r in rows]


async def score_months(conn: asyncpg.Connection, months: set[tuple[str, str]]) -> None:
    """Sum the scores of these (community, month)s again from their awards and corrections."""
    communities, ms = [c for c, _ in sorted(months)], [m for _, m in sorted(months)]
    await conn.execute("""delete from rk_month_scores where (community_id, month) in
                          (select * from unnest($1::text[], $2::text[]))""", communities, ms)
    await conn.execute(f"insert into rk_month_scores {month_sums('select * from unnest($1::text[], $2::text[])')}",
                       communities, ms)


STATISTICS = ("rk_subjects", "rk_awards", "rk_corrections", "rk_month_scores")


async def analyze_stale(conn: asyncpg.Connection) -> None:
    """ANALYZE the tables a recompute reads that were never analysed or have more than doubled since:
    the first certifications of a county come in faster than autovacuum looks, and without statistics
    the planner chose plans that ran 25-40 s where 2 s would do."""
    stale = await conn.fetch(
        """select c.relname from pg_class c left join pg_stat_all_tables s on s.relid = c.oid
           where c.oid = any(select to_regclass(t) from unnest($1::text[]) as t)
             and (c.reltuples < 0 or coalesce(s.n_mod_since_analyze, 0) > greatest(c.reltuples, 10000))""",
        list(STATISTICS))
    for row in stale:
        started = time.perf_counter()
        await conn.execute(f'analyze "{row["relname"]}"')
        log.info("ranking.analyzed", table=row["relname"], seconds=round(time.perf_counter() - started, 3))


async def run(conn: asyncpg.Connection, dirty: dict[str, set[str]], county: bool = True,
              rescored: set[tuple[str, str]] | None = None) -> Changed:
    """Recompute the dirty months of each community: their scores (those ``rescored``, by default all
    of them: certified or corrected since), rankings (and the county's, unless ``county`` is False:
    ``county.run`` later), talks, nominations and consequences."""
    await score_months(conn, {(c, m) for c, ms in dirty.items() for m in ms} if rescored is None else rescored)
    await analyze_stale(conn)
    certified = await certified_months(conn)
    ranked = await rank_touched(conn, touched_periods(dirty, county), certified)
    changed = Changed(ranked, {})
    for community in sorted(dirty):
        await talks_and_nominations(conn, community, sorted(dirty[community]))
        changed.consequences[community] = await consequences_of(conn, community, certified.get(community, set()))
    return changed


async def entries_of(conn: asyncpg.Connection, scope: str, categories: list[str], period_codes: list[str],
                     where: str = "true", *args: object) -> dict[tuple[str, str], list[Entry]]:
    """(category, period) -> entries in ranking order, those matching ``where``."""
    rows = await conn.fetch(
        f"""select l.category, l.period, e.subject_id, e.score, e.rank, e.from_bottom, e.not_ranked
            from rk_ranking_lists l cross join lateral {ENTRIES}
            where l.scope = $1 and l.category = any($2::text[]) and l.period = any($3::text[]) and ({where})
            order by l.category, l.period, e.position""",
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
        women = await conn.fetch(  # totals first: joined to each subject, the lists would be unnested per subject
            f"""with totals as materialized (
                    select e.subject_id, sum(e.score)::bigint as total from rk_ranking_lists l
                    cross join lateral {ENTRIES} where l.scope = $1 and l.period = $2 group by e.subject_id)
                select s.subject_id, s.registered_on, s.moved_out_on, coalesce(t.total, 0)::bigint as total
                from rk_subjects s left join totals t using (subject_id)
                where s.community_id = $1 and s.kind = 'person' and s.gender = any($3::text[])""",
            community, month, list(FEMALE))
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
    # a subject re-registered here from a community not recomputed yet (or at all) takes its row along
    await conn.executemany("""insert into rk_consequences values ($1, $2, $3, $4) on conflict (subject_id, consequence)
                              do update set community_id = excluded.community_id, basis = excluded.basis""",
                           [(community, s, c, b) for (s, c), b in sorted(result.items())])
    return result
