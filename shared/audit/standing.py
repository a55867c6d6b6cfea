"""A subject's rank and balance on a date, as the auditor establishes them: the ranking and
exchange services' own projections replayed from the log up to that moment into a scratch schema
of the auditor's database (never the services' databases), then read for that subject.

Each rank is checked against what the ranking service published: the last ``RankingChanged`` on
the log by then for that ranking must carry the digest the replay computed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg

from shared import replay
from shared.audit import diff
from shared.audit.log import Log
from shared.events.ranking import RankingChanged
from shared.settings import Settings
from shared.vocabulary import CATEGORIES, CONSEQUENCES, COUNTY_WIDE, NOT_RANKED, words


@dataclass
class Rank:
    scope: str  # a community id, or "county"
    category: str
    period: str  # 2026-11, 2026-Q4 or 2026
    score: int
    rank: int | None
    from_bottom: int | None
    not_ranked: str | None
    digest: str  # of the whole ranking, as replayed
    published_event_id: str | None = None  # the last RankingChanged of that ranking by then
    matches_published: bool = False


@dataclass
class Balance:
    awarded: int = 0
    corrected: int = 0
    redeemed: int = 0
    returned: int = 0

    @property
    def spendable(self) -> int:
        return self.awarded + self.corrected - self.redeemed + self.returned


@dataclass
class Standing:
    ranks: list[Rank] = field(default_factory=list)
    consequences: list[dict[str, str]] = field(default_factory=list)  # consequence, basis
    balance: Balance = field(default_factory=Balance)
    events: dict[str, int] = field(default_factory=dict)  # projection -> events replayed

    @property
    def consistent(self) -> bool:
        return all(r.matches_published for r in self.ranks)

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"balance": asdict(self.balance) | {"spendable": self.balance.spendable},
                               "consistent": self.consistent}


def _order(r: Rank) -> tuple[int, int, int, bool, str, str]:
    """Latest year first; within it months, then quarters, then the year, latest first; the community
    before the county."""
    year, _, rest = r.period.partition("-")
    kind = 2 if not rest else 1 if rest.startswith("Q") else 0
    return -int(year), kind, -int(rest.lstrip("Q") or 0), r.scope == "county", r.scope, r.category


async def standing(settings: Settings, log: Log, subject_id: str, until: dt.datetime) -> Standing:
    """``settings.database_url``: the auditor's database (scratch schemas are made and dropped there)."""
    out = Standing()
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        (ranking,) = diff.read_models("ranking")
        built = await replay.rebuild(pool, ranking, settings, until=until, into="replay_ranking_explain", digest=False)
        out.events[ranking.name] = built.events
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                f"""select l.scope, l.category, l.period, l.scores[i] as score, l.ranks[i] as rank,
                           l.from_bottoms[i] as from_bottom, l.not_rankeds[i] as not_ranked, d.digest
                    from "{built.schema}".rk_ranking_lists l join "{built.schema}".rk_ranking_digests d
                    using (scope, category, period) cross join lateral array_position(l.subject_ids, $1) as i
                    where i is not null""", subject_id)
            out.consequences = [dict(r) for r in await conn.fetch(
                f'select consequence, basis from "{built.schema}".rk_consequences where subject_id = $1 '
                "order by consequence", subject_id)]
            await conn.execute(f'drop schema "{built.schema}" cascade')
        published: dict[tuple[str, str, str], tuple[str, str]] = {}
        for e in log.of(RankingChanged):
            ev = e.event
            assert isinstance(ev, RankingChanged)
            if e.envelope.time < until:
                published[(ev.community_id, ev.category, ev.period)] = (ev.digest, str(e.envelope.id))
        for r in rows:
            digest, event_id = published.get((r["scope"], r["category"], r["period"]), (None, None))
            out.ranks.append(Rank(r["scope"], r["category"], r["period"], r["score"], r["rank"], r["from_bottom"],
                                  r["not_ranked"], r["digest"], event_id, digest == r["digest"]))
        out.ranks.sort(key=_order)

        (exchange,) = diff.read_models("exchange")
        built = await replay.rebuild(pool, exchange, settings, until=until, into="replay_exchange_explain",
                                     digest=False)
        out.events[exchange.name] = built.events
        async with pool.acquire() as conn:
            row = await conn.fetchrow(f'select awarded, corrected, redeemed, returned from "{built.schema}".balances '
                                      "where subject_id = $1", subject_id)
            await conn.execute(f'drop schema "{built.schema}" cascade')
        if row is not None:
            out.balance = Balance(**dict(row))
    finally:
        await pool.close()
    return out


def render(s: Standing) -> list[str]:
    """zh-CN lines for a terminal: the ranks (latest first), the consequences and the balance."""
    out = []
    for r in s.ranks:
        where = COUNTY_WIDE if r.scope == "county" else r.scope
        place = f"第 {r.rank} 名" if r.rank is not None else words(NOT_RANKED, r.not_ranked or "")
        check = (f"与排名服务发布的事件一致（{r.published_event_id}）" if r.matches_published
                 else "[与排名服务发布的不一致]")
        out.append(f"  排名 {r.period} {where} {words(CATEGORIES, r.category)}：{place}（{r.score} 分）{check}")
    out += [f"  后果：{words(CONSEQUENCES, c['consequence'])}（依据 {c['basis']}）" for c in s.consequences]
    b = s.balance
    out.append(f"  爱心超市可用积分 {b.spendable} 分 = 已认定 {b.awarded} + 更正 {b.corrected} − 兑换 {b.redeemed} "
               f"+ 退还 {b.returned}")
    return out
