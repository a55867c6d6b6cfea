"""Recompute the rankings a batch touched, from the read model's tables alone (no clock, no order).

The arithmetic is the pure domain's (``domain/ranking.py``, ``consequences.py``, ``talks.py``);
this module only reads scores and the roster, and writes the results.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from services.ranking.domain import periods
from services.ranking.domain.consequences import CADRE, PARTY_MEMBER, Rankings, consequences
from services.ranking.domain.periods import Period
from services.ranking.domain.ranking import Entry, Member, digest, rank
from services.ranking.domain.talks import nominees, talks_due
from services.ranking.settings import ranking_rules
from shared.events.ranking import COUNTY
from shared.vocabulary import CATEGORIES, TEN_MOST_BEAUTIFUL

FEMALE = ("female", "女")


@dataclass(frozen=True)
class Subject:
    member: Member
    name: str
    kind: str
    categories: tuple[str, ...]
    gender: str | None


@dataclass(frozen=True)
class Ranked:
    scope: str  # community id or COUNTY
    category: str
    period: str
    entries: tuple[Entry, ...]
    digest: str
    months: tuple[str, ...]


@dataclass
class Changed:
    rankings: list[Ranked]
    consequences: dict[str, dict[tuple[str, str], str]]  # community -> (subject, consequence) -> basis
    names: dict[str, str]


SCORES = """
with certified(community_id, month) as (select * from unnest($1::text[], $2::text[]))
select subject_id, category, sum(points)::bigint as score from (
    select a.subject_id, a.category, a.points from rk_awards a join certified c using (community_id, month)
    union all
    select r.subject_id, r.category, r.delta from rk_corrections r join certified c using (community_id, month)
) s group by subject_id, category"""


async def load_subjects(conn: asyncpg.Connection) -> dict[str, Subject]:
    rows = await conn.fetch("select * from rk_subjects")
    return {r["subject_id"]: Subject(Member(r["subject_id"], r["community_id"], r["registered_on"],
                                            r["moved_out_on"]), r["name"], r["kind"], tuple(r["categories"]),
                                     r["gender"]) for r in rows}


async def certified_months(conn: asyncpg.Connection) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for r in await conn.fetch("select community_id, month from rk_months where complete"):
        out[r["community_id"]].add(r["month"])
    return out


async def scores(conn: asyncpg.Connection, pairs: list[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """category -> subject -> score over the certified (community, month) pairs."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for r in await conn.fetch(SCORES, [c for c, _ in pairs], [m for _, m in pairs]):
        out[r["category"]][r["subject_id"]] = r["score"]
    return out


def rank_all(subjects: Iterable[Subject], by_category: dict[str, dict[str, int]], scope: str, period: Period,
             months: tuple[str, ...]) -> list[Ranked]:
    members: dict[str, list[Member]] = defaultdict(list)
    for s in subjects:
        for c in s.categories:
            members[c].append(s.member)
    out = []
    for category in CATEGORIES:
        if not members.get(category):
            continue
        entries = rank(members[category], by_category.get(category, {}), period)
        out.append(Ranked(scope, category, period.code, entries, digest(entries), months))
    return out


async def write(conn: asyncpg.Connection, ranked: list[Ranked]) -> None:
    for scope, period in sorted({(r.scope, r.period) for r in ranked}):
        await conn.execute("delete from rk_rankings where scope = $1 and period = $2", scope, period)
        await conn.execute("delete from rk_ranking_digests where scope = $1 and period = $2", scope, period)
    rows = [(r.scope, r.category, r.period, e.subject_id, e.score, e.rank, e.from_bottom, e.not_ranked)
            for r in ranked for e in r.entries]
    await conn.copy_records_to_table("rk_rankings", records=rows)
    await conn.copy_records_to_table("rk_ranking_digests", records=[
        (r.scope, r.category, r.period, r.digest, sum(e.rank is not None for e in r.entries),
         sum(e.rank is None for e in r.entries), list(r.months)) for r in ranked])


async def run(conn: asyncpg.Connection, dirty: dict[str, set[str]]) -> Changed:
    subjects = await load_subjects(conn)
    certified = await certified_months(conn)
    touched: dict[str, set[Period]] = defaultdict(set)
    for community, months in dirty.items():
        for m in months:
            touched[community].update(periods.containing(m))
            touched[COUNTY].update(periods.containing(m))
    ranked: list[Ranked] = []
    for scope in sorted(touched):
        in_scope = list(subjects.values()) if scope == COUNTY else [
            s for s in subjects.values() if s.member.community_id == scope]
        for period in sorted(touched[scope]):
            pairs = sorted((c, m) for c, ms in certified.items() for m in ms if m in period.months
                           and (scope == COUNTY or c == scope))
            if pairs:
                counted = tuple(sorted({m for _, m in pairs}))
                ranked += rank_all(in_scope, await scores(conn, pairs), scope, period, counted)
    await write(conn, ranked)
    by_key = {(r.scope, r.category, r.period): r for r in ranked}
    changed = Changed(ranked, {}, {sid: s.name for sid, s in subjects.items()})
    for community in sorted(dirty):
        await talks_and_nominations(conn, community, sorted(dirty[community]), by_key, subjects)
        changed.consequences[community] = await consequences_of(conn, community, certified.get(community, set()))
    return changed


async def talks_and_nominations(conn: asyncpg.Connection, community: str, months: list[str],
                                by_key: dict[tuple[str, str, str], Ranked], subjects: dict[str, Subject]) -> None:
    for month in months:
        await conn.execute("delete from rk_talks_due where community_id = $1 and month = $2", community, month)
        await conn.execute("delete from rk_nominations where community_id = $1 and month = $2", community, month)
        talks, noms = [], []
        for category in CATEGORIES:
            r = by_key.get((community, category, month))
            if r is None:
                continue
            talks += [(community, month, category, s, t) for s, t in talks_due(r.entries)]
            if category in TEN_MOST_BEAUTIFUL:
                noms += [(community, month, category, e.subject_id, e.rank, e.score) for e in nominees(r.entries)]
        women = [s.member for s in subjects.values() if s.member.community_id == community and s.kind == "person"
                 and s.gender in FEMALE]
        if women:
            totals: dict[str, int] = defaultdict(int)
            for category in CATEGORIES:
                r = by_key.get((community, category, month))
                for e in r.entries if r else ():
                    totals[e.subject_id] += e.score
            entries = rank(women, totals, periods.month(month))
            noms += [(community, month, "woman", e.subject_id, e.rank, e.score) for e in nominees(entries)]
        await conn.executemany("insert into rk_talks_due values ($1, $2, $3, $4, $5) on conflict do nothing", talks)
        await conn.executemany("insert into rk_nominations values ($1, $2, $3, $4, $5, $6)", noms)


async def consequences_of(conn: asyncpg.Connection, community: str, certified: set[str]
                          ) -> dict[tuple[str, str], str]:
    years = sorted({m[:4] for m in certified})
    closed = sorted({q for m in certified for q in [periods.containing(m)[1]] if set(q.months) <= certified})
    year = periods.year(int(years[-1])) if years else None
    wanted = [q.code for q in closed] + ([year.code] if year else [])
    rows = await conn.fetch(
        """select category, period, subject_id, score, rank, from_bottom, not_ranked from rk_rankings
           where scope = $1 and category = any($2::text[]) and period = any($3::text[])
           order by category, period, rank nulls last, subject_id""", community, [PARTY_MEMBER, CADRE], wanted)
    rankings: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    for r in rows:
        rankings[(r["category"], r["period"])].append(
            Entry(r["subject_id"], r["score"], r["rank"], r["from_bottom"], r["not_ranked"]))
    now: Rankings = rankings
    result = consequences(now, closed, year, ranking_rules())
    await conn.execute("delete from rk_consequences where community_id = $1", community)
    await conn.executemany("insert into rk_consequences values ($1, $2, $3, $4)",
                           [(community, s, c, b) for (s, c), b in sorted(result.items())])
    return result
