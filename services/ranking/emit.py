"""Say what changed: ranking and consequence events into the service's own log (the relay publishes them).

Called by the live projection inside its transaction, so the events commit with the read-model
rows and the offsets that caused them: exactly once under redelivery. What was last said is kept
in ``ranking_emitted`` / ``consequence_emitted`` (service tables, not the rebuildable read model).
Stream ids are deterministic (``ranking-<scope>-<category>-<period>``, ``consequences-<community>``);
the events record the triggering event as their causation and its time as theirs (no wall clock).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from services.ranking.domain.consequences import changes
from services.ranking.settings import ranking_settings
from shared.envelope import Envelope
from shared.events import Event
from shared.events.ranking import ConsequenceGranted, ConsequenceWithdrawn, RankedEntry, RankingChanged
from shared.store import Append, EventStore, Recorded

if TYPE_CHECKING:
    from services.ranking.recompute import Changed, Ranked
from services.ranking.tables import entries

ACTOR = "ranking-service"


def ranking_stream(scope: str, category: str, period: str) -> str:
    return f"ranking-{scope}-{category}-{period}"


# How many entries of a ranking have a rank of at most $4, counted in the shortest prefix that holds them:
# the ranked come first in rank order and the not ranked (no rank) last, so once the entry at position k
# ranks below $4, or has no rank, or there is none (NULL past the end), every one of them is before k. A
# county ranking is 200,000 entries; counting them all took 0.33 s of every county ranking's events.
TOP_COUNT = "case " + " ".join(
    f"when coalesce(l.ranks[{k}] > $4, true) then (select count(*) from unnest(l.ranks[:{k}]) as r where r <= $4)"
    for k in (64, 1024, 16384)) + " else (select count(*) from unnest(l.ranks) as r where r <= $4) end"


async def tops(conn: asyncpg.Connection, rankings: list[Ranked], n: int
               ) -> dict[tuple[str, str, str], tuple[RankedEntry, ...]]:
    """The top ``n`` (ties included) of each ranking, in ranking order, with names."""
    rows = await conn.fetch(
        f"""select l.scope, l.category, l.period, e.subject_id, coalesce(s.name, '') as name, e.score, e.rank
           from unnest($1::text[], $2::text[], $3::text[]) as k(scope, category, period)
           join rk_ranking_lists l on (l.scope, l.category, l.period) = (k.scope, k.category, k.period)
           cross join lateral (select ({TOP_COUNT})::integer as n) as top
           cross join lateral {entries("top.n")}
           left join rk_subjects s on s.subject_id = e.subject_id
           order by l.scope, l.category, l.period, e.position""",
        [r.scope for r in rankings], [r.category for r in rankings], [r.period for r in rankings], n)
    out: dict[tuple[str, str, str], list[RankedEntry]] = {}
    for r in rows:
        out.setdefault((r["scope"], r["category"], r["period"]), []).append(
            RankedEntry(subject_id=r["subject_id"], name=r["name"], score=r["score"], rank=r["rank"]))
    return {k: tuple(v) for k, v in out.items()}


async def names_of(conn: asyncpg.Connection, subject_ids: set[str]) -> dict[str, str]:
    rows = await conn.fetch("select subject_id, name from rk_subjects where subject_id = any($1::text[])",
                            sorted(subject_ids))
    return {r["subject_id"]: r["name"] for r in rows}


@dataclass(frozen=True)
class Trigger:
    """The event that caused a recompute (an envelope, or one kept while the county was put off)."""

    id: uuid.UUID
    time: dt.datetime
    correlation_id: str


class Emitter:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    async def emit(self, conn: asyncpg.Connection, changed: Changed, causes: Mapping[str, Trigger | Envelope]
                   ) -> int:
        """Append what changed, each ranking's and community's events caused by ``causes[scope]``."""
        def recorded(scope: str) -> Recorded:
            cause = causes[scope]
            return Recorded(actor=ACTOR, time=cause.time, correlation_id=uuid.UUID(cause.correlation_id),
                            causation_id=cause.id)

        appends: list[Append] = []
        streams = {ranking_stream(r.scope, r.category, r.period): r for r in changed.rankings}
        said = {r["stream_id"]: (r["digest"], r["version"]) for r in await conn.fetch(
            "select * from ranking_emitted where stream_id = any($1::text[])", list(streams))}
        saying = {stream: r for stream, r in sorted(streams.items()) if said.get(stream, ("", 0))[0] != r.digest}
        heads = await tops(conn, list(saying.values()), ranking_settings().event_top)
        updates = []
        for stream, r in saying.items():
            version = said.get(stream, ("", 0))[1]
            event = RankingChanged(
                community_id=r.scope, category=r.category, period=r.period,
                top=heads.get((r.scope, r.category, r.period), ()), ranked=r.ranked, not_ranked=r.not_ranked,
                digest=r.digest, certified_months=r.months)
            appends.append((stream, version, [event], r.scope, recorded(r.scope)))
            updates.append((stream, r.digest, version + 1))
        for community, after in sorted(changed.consequences.items()):
            rows = await conn.fetch("select * from consequence_emitted where community_id = $1", community)
            before = {(r["subject_id"], r["consequence"]): r["basis"] for r in rows}
            granted, withdrawn = changes(before, after)
            names = await names_of(conn, {s for s, _, _ in granted + withdrawn})
            events: list[Event] = [
                *(ConsequenceWithdrawn(community_id=community, subject_id=s, name=names.get(s, ""),
                                       consequence=c, basis=b) for s, c, b in withdrawn),  # type: ignore[arg-type]
                *(ConsequenceGranted(community_id=community, subject_id=s, name=names.get(s, ""),
                                     consequence=c, basis=b) for s, c, b in granted)]  # type: ignore[arg-type]
            if not events:
                continue
            stream = f"consequences-{community}"
            version, _ = await self.store.stream_version(conn, stream)
            appends.append((stream, version, events, community, recorded(community)))
            await conn.execute("delete from consequence_emitted where community_id = $1", community)
            await conn.executemany("insert into consequence_emitted values ($1, $2, $3, $4)",
                                   [(community, s, c, b) for (s, c), b in sorted(after.items())])
        if not appends:
            return 0
        await conn.executemany(
            """insert into ranking_emitted values ($1, $2, $3) on conflict (stream_id)
               do update set digest = excluded.digest, version = excluded.version""", updates)
        await self.store.append_many(conn, appends, known={s: (v, "") for s, v, *_ in appends})
        return sum(len(a[2]) for a in appends)
