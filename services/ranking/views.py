"""Read-model queries of the ranking service (plain SQL; names, never bare ids, for pages)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from services.ranking.domain import periods
from services.ranking.domain.periods import Period
from services.ranking.tables import entries
from shared.errors import Rejected
from shared.events.ranking import COUNTY
from shared.vocabulary import CATEGORIES, CONSEQUENCES, COUNTY_WIDE, NOT_RANKED, TALKS, TEN_MOST_BEAUTIFUL, words


async def scope_name(conn: asyncpg.Connection, scope: str) -> str:
    if scope == COUNTY:
        return COUNTY_WIDE
    name = await conn.fetchval("select name from rk_communities where community_id = $1", scope)
    if name is None:
        raise Rejected(f"没有这个社区：{scope}", status=404, code="unknown_community")
    return str(name)


def category_of(code: str) -> str:
    if code not in CATEGORIES:
        raise Rejected(f"没有这个积分主体类别：{code}（可选：{'、'.join(CATEGORIES)}）", status=422,
                       code="unknown_category")
    return CATEGORIES[code]


def period_of(code: str, today: dt.date) -> Period:
    p = periods.parse(code)
    periods.refuse_future(p, today)
    return p


async def ranking(conn: asyncpg.Connection, scope: str, category: str, period: Period, limit: int = 100_000
                  ) -> dict[str, Any]:
    name = await scope_name(conn, scope)
    category_name = category_of(category)
    head = await conn.fetchrow("select * from rk_ranking_digests where scope = $1 and category = $2 and period = $3",
                               scope, category, period.code)
    if head is None:
        raise Rejected(f"{name}{period.code}尚无已认定的月份，暂无“{category_name}”排名", status=404,
                       code="no_ranking")
    rows = await conn.fetch(  # the lists are in ranking order: the first ``limit`` are the top
        f"""select e.*, s.name from rk_ranking_lists l cross join lateral {entries("$4")}
           join rk_subjects s using (subject_id)
           where l.scope = $1 and l.category = $2 and l.period = $3 order by e.position""",
        scope, category, period.code, limit)
    return {"scope": scope, "scope_name": name, "category": category, "category_name": category_name,
            "period": period.code, "period_kind": period.kind, "months": list(head["months"]),
            "digest": head["digest"], "ranked": head["ranked"], "not_ranked": head["not_ranked"],
            "entries": [{"subject_id": r["subject_id"], "name": r["name"], "score": r["score"], "rank": r["rank"],
                         "from_bottom": r["from_bottom"], "not_ranked": r["not_ranked"],
                         "status": words(NOT_RANKED, r["not_ranked"]) if r["not_ranked"] else f"第 {r['rank']} 名"}
                        for r in rows]}


async def subject(conn: asyncpg.Connection, subject_id: str) -> asyncpg.Record:
    row = await conn.fetchrow("select * from rk_subjects where subject_id = $1", subject_id)
    if row is None:
        raise Rejected(f"没有这个积分主体：{subject_id}", status=404, code="unknown_subject")
    return row


async def history(conn: asyncpg.Connection, subject_id: str) -> dict[str, Any]:
    s = await subject(conn, subject_id)
    rows = await conn.fetch(  # the subject's place in each of its community's rankings
        """select l.category, l.period, l.scores[i] as score, l.ranks[i] as rank, l.not_rankeds[i] as not_ranked
           from rk_ranking_lists l cross join lateral array_position(l.subject_ids, $1) as i
           where l.scope = $2 and i is not null order by length(l.period), l.period, l.category""",
        subject_id, s["community_id"])
    return {"subject_id": subject_id, "name": s["name"], "community_id": s["community_id"], "ranks": [
        {"category": r["category"], "category_name": CATEGORIES.get(r["category"], r["category"]),
         "period": r["period"], "score": r["score"], "rank": r["rank"], "not_ranked": r["not_ranked"]}
        for r in rows]}


async def why(conn: asyncpg.Connection, subject_id: str, period: Period) -> dict[str, Any]:
    """The certified items and corrections behind a subject's score, with actors and certifications."""
    s = await subject(conn, subject_id)
    months = await conn.fetch("""select * from rk_months where community_id = $1 and complete
                                 and month = any($2::text[]) order by month""", s["community_id"], list(period.months))
    certified = [m["month"] for m in months]
    awards = await conn.fetch(
        """select a.*, i.declared_by, i.entered_by, i.description, i.rule_title, i.occurred_on from rk_awards a
           left join rk_items i using (item_id) where a.subject_id = $1 and a.community_id = $2
           and a.month = any($3::text[]) order by a.month, a.item_id""", subject_id, s["community_id"], certified)
    corrections = await conn.fetch(
        """select * from rk_corrections where subject_id = $1 and community_id = $2 and month = any($3::text[])
           order by month, correction_id""", subject_id, s["community_id"], certified)
    items = [{"item_id": a["item_id"], "month": a["month"], "category": a["category"], "dimension": a["dimension"],
              "rule_code": a["rule_code"], "rule_title": a["rule_title"] or "", "points": a["points"],
              "description": a["description"] or "", "declared_by": a["declared_by"] or "",
              "entered_by": a["entered_by"] or ""} for a in awards]
    fixes = [{"correction_id": c["correction_id"], "month": c["month"], "item_id": c["item_id"],
              "category": c["category"], "delta": c["delta"], "reason": c["reason"], "made_by": c["made_by"],
              "made_at": c["made_at"].isoformat()} for c in corrections]
    return {"subject_id": subject_id, "name": s["name"], "period": period.code,
            "total": sum(i["points"] for i in items) + sum(f["delta"] for f in fixes),
            "certifications": [{"month": m["month"], "count": m["count"], "total": m["total"], "digest": m["digest"],
                                "signed_by": list(m["signed_by"]), "signer_names": list(m["signer_names"]),
                                "certified_at": m["certified_at"].isoformat(), "event_id": str(m["event_id"])}
                               for m in months],
            "items": items, "corrections": fixes}


async def consequences(conn: asyncpg.Connection, community_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch("""select c.*, s.name from rk_consequences c join rk_subjects s using (subject_id)
                               where c.community_id = $1 order by consequence, s.subject_id""", community_id)
    return [{"subject_id": r["subject_id"], "name": r["name"], "consequence": r["consequence"],
             "consequence_name": CONSEQUENCES[r["consequence"]], "basis": r["basis"]} for r in rows]


async def talks(conn: asyncpg.Connection, community_id: str, month: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """select d.*, s.name, h.held_by, h.note from rk_talks_due d join rk_subjects s using (subject_id)
           left join talks_held h on (h.community_id, h.month, h.subject_id, h.talk)
                                   = (d.community_id, d.month, d.subject_id, d.talk)
           where d.community_id = $1 and d.month = $2 order by d.talk, d.category, d.subject_id""",
        community_id, month)
    return [{"subject_id": r["subject_id"], "name": r["name"], "category": r["category"], "talk": r["talk"],
             "talk_name": TALKS[r["talk"]], "held": r["held_by"] is not None, "held_by": r["held_by"],
             "note": r["note"]} for r in rows]


async def nominations(conn: asyncpg.Connection, community_id: str, month: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """select n.*, s.name, (m.subject_id is not null) as selected from rk_nominations n
           join rk_subjects s using (subject_id)
           left join role_models m on (m.community_id, m.month, m.award, m.subject_id)
                                    = (n.community_id, n.month, n.award, n.subject_id)
           where n.community_id = $1 and n.month = $2 order by n.award, n.rank, n.subject_id""", community_id, month)
    return [{"award": r["award"], "award_name": TEN_MOST_BEAUTIFUL[r["award"]], "subject_id": r["subject_id"],
             "name": r["name"], "rank": r["rank"], "score": r["score"], "selected": r["selected"]} for r in rows]


async def role_models(conn: asyncpg.Connection, community_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch("select * from role_models where community_id = $1 order by month desc, award, subject_id",
                            community_id)
    return [{"month": r["month"], "award": r["award"], "award_name": TEN_MOST_BEAUTIFUL.get(r["award"], r["award"]),
             "subject_id": r["subject_id"], "name": r["name"], "note": r["note"]} for r in rows]


async def dimensions(conn: asyncpg.Connection, community_id: str, period: Period) -> list[tuple[str, int]]:
    rows = await conn.fetch(
        """select a.dimension, sum(a.points)::bigint as points
           from rk_awards a join rk_months m using (community_id, month)
           where a.community_id = $1 and m.complete and a.month = any($2::text[])
           group by a.dimension order by points desc, a.dimension""", community_id, list(period.months))
    return [(r["dimension"], r["points"]) for r in rows]
