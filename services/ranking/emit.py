"""Say what changed: ranking and consequence events into the service's own log (the relay publishes them).

Called by the live projection inside its transaction, so the events commit with the read-model
rows and the offsets that caused them: exactly once under redelivery. What was last said is kept
in ``ranking_emitted`` / ``consequence_emitted`` (service tables, not the rebuildable read model).
Stream ids are deterministic (``ranking-<scope>-<category>-<period>``, ``consequences-<community>``);
the events record the triggering event as their causation and its time as theirs (no wall clock).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import asyncpg

from services.ranking.domain.consequences import changes
from services.ranking.domain.ranking import top
from services.ranking.settings import ranking_settings
from shared.envelope import Envelope
from shared.events import Event
from shared.events.ranking import ConsequenceGranted, ConsequenceWithdrawn, RankedEntry, RankingChanged
from shared.store import Append, EventStore, Recorded

if TYPE_CHECKING:
    from services.ranking.recompute import Changed

ACTOR = "ranking-service"


def ranking_stream(scope: str, category: str, period: str) -> str:
    return f"ranking-{scope}-{category}-{period}"


class Emitter:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    async def emit(self, conn: asyncpg.Connection, changed: Changed, trigger: Envelope) -> int:
        recorded = Recorded(actor=ACTOR, time=trigger.time, correlation_id=uuid.UUID(trigger.correlation_id),
                            causation_id=trigger.id)
        appends: list[Append] = []
        streams = {ranking_stream(r.scope, r.category, r.period): r for r in changed.rankings}
        said = {r["stream_id"]: (r["digest"], r["version"]) for r in await conn.fetch(
            "select * from ranking_emitted where stream_id = any($1::text[])", list(streams))}
        updates = []
        n = ranking_settings().event_top
        for stream, r in sorted(streams.items()):
            digest, version = said.get(stream, ("", 0))
            if digest == r.digest:
                continue
            event = RankingChanged(
                community_id=r.scope, category=r.category, period=r.period,
                top=tuple(RankedEntry(subject_id=e.subject_id, name=changed.names.get(e.subject_id, ""),
                                      score=e.score, rank=e.rank or 0) for e in top(r.entries, n)),
                ranked=sum(e.rank is not None for e in r.entries), not_ranked=sum(e.rank is None for e in r.entries),
                digest=r.digest, certified_months=r.months)
            appends.append((stream, version, [event], r.scope, recorded))
            updates.append((stream, r.digest, version + 1))
        for community, after in sorted(changed.consequences.items()):
            rows = await conn.fetch("select * from consequence_emitted where community_id = $1", community)
            before = {(r["subject_id"], r["consequence"]): r["basis"] for r in rows}
            granted, withdrawn = changes(before, after)
            events: list[Event] = [
                *(ConsequenceWithdrawn(community_id=community, subject_id=s, name=changed.names.get(s, ""),
                                       consequence=c, basis=b) for s, c, b in withdrawn),  # type: ignore[arg-type]
                *(ConsequenceGranted(community_id=community, subject_id=s, name=changed.names.get(s, ""),
                                     consequence=c, basis=b) for s, c, b in granted)]  # type: ignore[arg-type]
            if not events:
                continue
            stream = f"consequences-{community}"
            version, _ = await self.store.stream_version(conn, stream)
            appends.append((stream, version, events, community, recorded))
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
