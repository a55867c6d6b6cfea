"""The ranking projection: roster, awards, corrections and certifications from the log.

A month counts only once its ``MonthCertified`` and all its awards are applied and the count,
total and digest match (``complete``). Whatever a batch changed (a month certified, a correction
in a certified month, the roster of a community with certified months) is recomputed at the end
of the batch from the tables alone, so a rebuild from offset 0 ends byte-identical to the live
model, whatever order the two topics were interleaved in. The county's rankings (200,000 subjects
and more) are put off (``rk_county_pending``) until the runner settles: when the log has gone quiet, so a
burst of certifications, or a catch-up after an outage, ranks the county once. While a
community's certification is still arriving (its awards applied, its ``MonthCertified`` not yet), the
county is put off again: a certification is one transaction on review's log, so the rest follows,
and the county is ranked once it is in, not once per relay batch of a certification as it lands (the
runner insists after a few seconds of a quiet log, and at the end of a catch-up or replay).

The live runner is built with an ``emitter``: in the same transaction as the rows and the
offsets, it appends ``RankingChanged`` and consequence events to the service's own log for every
ranking whose digest differs from what was last appended (``ranking_emitted``), each caused by the
last event that touched its community (the county's: the last put off). Redelivery is
skipped by the stored offsets, so nothing is said twice; a replay (``RankingProjection()``, no
emitter, scratch schema) never appends.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence

import asyncpg

from services.ranking import county, leaderboard, recompute
from services.ranking.emit import Emitter, Trigger
from services.ranking.tables import READ_MODEL, TABLES
from shared.envelope import Envelope
from shared.events.declarations import (
    CommunityRegistered,
    DeclarationSubmitted,
    DeductionRecorded,
    SubjectCategoriesChanged,
    SubjectMovedOut,
    SubjectRegistered,
)
from shared.events.ranking import COUNTY
from shared.events.review import MonthCertified, PointsAwarded, PointsCorrected, certification_check
from shared.logging import get_logger
from shared.projection import Projection
from shared.topics import DECLARATIONS, REVIEW

log = get_logger("ranking.projection")
AWARD_COLUMNS = ("item_id", "community_id", "month", "subject_id", "category", "dimension", "rule_code", "points")
MONTH_CHECK = certification_check("rk_awards")


class RankingProjection(Projection):
    name = "ranking"
    topics = (DECLARATIONS, REVIEW)
    reads = (CommunityRegistered, SubjectRegistered, SubjectCategoriesChanged, SubjectMovedOut, DeclarationSubmitted,
             DeductionRecorded, PointsAwarded, MonthCertified, PointsCorrected)
    settles = True
    tables = TABLES
    schema = READ_MODEL

    def __init__(self, emitter: Emitter | None = None) -> None:
        self.emitter = emitter
        # (community, month) whose awards are applied and whose MonthCertified is not: a hint for ``settle``
        # only (what is written never depends on it), so it lives in memory and starts empty
        self.certifying: set[tuple[str, str]] = set()

    async def apply(self, conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None:
        dirty: dict[str, set[str]] = {}  # community -> months to recompute
        roster_changed: set[str] = set()
        rescored: set[tuple[str, str]] = set()  # (community, month) certified or corrected: its scores summed again
        causes: dict[str, Envelope] = {}  # community -> the last event that changed its rankings
        awards: list[PointsAwarded] = []
        items: list[DeclarationSubmitted | DeductionRecorded] = []  # only looked up ("why"): written at the end
        registered: dict[str, SubjectRegistered] = {}  # upserts put together (the last of a subject wins)
        trigger: Envelope | None = None
        for env in envelopes:
            ev = env.event
            if isinstance(ev, PointsAwarded):
                awards.append(ev)
                continue
            if isinstance(ev, DeclarationSubmitted | DeductionRecorded):
                items.append(ev)
                continue
            if isinstance(ev, SubjectRegistered):
                registered.pop(ev.subject_id, None)
                registered[ev.subject_id] = ev
                roster_changed.add(ev.community_id)
                causes.setdefault(ev.community_id, env)
                trigger = trigger or env
                continue
            if awards:  # log order: a month's awards land before its MonthCertified
                await self._awards(conn, awards)
                awards = []
            if registered:  # before a later change of the same subjects
                roster_changed |= await _registered(conn, list(registered.values()))
                registered = {}
            if isinstance(ev, MonthCertified):
                self.certifying.discard((ev.community_id, ev.month))
                if await _certified(conn, env, ev):
                    dirty.setdefault(ev.community_id, set()).add(ev.month)
                    rescored.add((ev.community_id, ev.month))
                    causes[ev.community_id] = trigger = env
            elif isinstance(ev, PointsCorrected):
                await conn.execute(
                    "insert into rk_corrections values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) on conflict do nothing",
                    ev.correction_id, ev.community_id, ev.month, ev.item_id, ev.item_month, ev.subject_id,
                    ev.category, ev.dimension, ev.delta, ev.reason, env.actor, env.time)
                if await conn.fetchval("select complete from rk_months where community_id = $1 and month = $2",
                                       ev.community_id, ev.month):
                    dirty.setdefault(ev.community_id, set()).add(ev.month)
                    rescored.add((ev.community_id, ev.month))
                    causes[ev.community_id] = trigger = env
            elif await _roster(conn, ev):
                roster_changed.add(ev.community_id)  # type: ignore[attr-defined]
                causes.setdefault(ev.community_id, env)  # type: ignore[attr-defined]
                trigger = trigger or env
        if awards:
            await self._awards(conn, awards)
        if registered:
            roster_changed |= await _registered(conn, list(registered.values()))
        if items:
            await _items(conn, items)
        for community in roster_changed:  # a roster change reaches every certified month of the community
            months = await conn.fetch("select month from rk_months where community_id = $1 and complete", community)
            if months:
                dirty.setdefault(community, set()).update(r["month"] for r in months)
        if dirty:
            started = time.perf_counter()
            changed = await recompute.run(conn, dirty, county=False, rescored=rescored)
            assert trigger is not None
            await conn.execute(  # the county's rankings of these months: when the projection settles
                """insert into rk_county_pending select m, $2, $3, $4 from unnest($1::text[]) as m
                   on conflict (month) do update set trigger_id = excluded.trigger_id,
                       trigger_time = excluded.trigger_time, correlation_id = excluded.correlation_id""",
                sorted({m for months in dirty.values() for m in months}), trigger.id, trigger.time,
                trigger.correlation_id)
            await self._said(conn, changed, {c: causes.get(c, trigger) for c in dirty}, started,
                             months={c: sorted(m) for c, m in dirty.items()})

    async def _awards(self, conn: asyncpg.Connection, awards: list[PointsAwarded]) -> None:
        """Copied in (a certification brings 100,000 awards and more). An item is awarded once: a second
        award of it under another event id fails the batch, and the runner dead-letters it with its cause."""
        await conn.copy_records_to_table("rk_awards", columns=AWARD_COLUMNS, records=[
            (a.item_id, a.community_id, a.month, a.subject_id, a.category, a.dimension, a.rule_code, a.points)
            for a in awards])
        self.certifying.update({(a.community_id, a.month) for a in awards})

    async def settle(self, conn: asyncpg.Connection, *, more_coming: bool) -> bool:
        """Rank the county for the months put off (once for a burst of certifications); put off again
        while a certification is still arriving and the runner says more may be coming."""
        if more_coming and self.certifying:
            return False
        self.certifying.clear()  # what is left (a certification cut short on the log) holds no later settle up
        pending = await conn.fetch("delete from rk_county_pending returning *")
        if not pending:
            return True
        started = time.perf_counter()
        changed = await county.run(conn, {r["month"] for r in pending})
        last = max(pending, key=lambda r: (r["trigger_time"], str(r["trigger_id"])))
        await self._said(conn, changed, {COUNTY: Trigger(last["trigger_id"], last["trigger_time"],
                                                         last["correlation_id"])},
                         started, months={COUNTY: sorted(r["month"] for r in pending)})
        return True

    async def _said(self, conn: asyncpg.Connection, changed: recompute.Changed,
                    causes: Mapping[str, Trigger | Envelope], started: float, months: dict[str, list[str]]) -> None:
        await conn.execute("select pg_notify($1, '')", leaderboard.CHANNEL)  # delivered on commit
        emitted = 0
        if self.emitter is not None:
            emitted = await self.emitter.emit(conn, changed, causes)
        log.info("ranking.recomputed", months=months, rankings=len(changed.rankings), emitted=emitted,
                 seconds=round(time.perf_counter() - started, 3))


async def _certified(conn: asyncpg.Connection, env: Envelope, ev: MonthCertified) -> bool:
    got = await conn.fetchrow(MONTH_CHECK, ev.community_id, ev.month)
    complete = (got["n"], got["total"], got["digest"]) == (ev.count, ev.total, ev.digest)
    inserted = await conn.fetchval(
        """insert into rk_months values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) on conflict do nothing
           returning complete""",
        ev.community_id, ev.month, ev.count, ev.total, ev.digest, complete, ev.certified_at, list(ev.signed_by),
        list(ev.signer_names or ev.signed_by), env.id)
    return bool(inserted)


async def _registered(conn: asyncpg.Connection, subjects: list[SubjectRegistered]) -> set[str]:
    """Upsert registrations (one per subject: the statement may not touch a row twice). Returns the
    communities the subjects were registered in before, where another: their rankings lose them."""
    left = await conn.fetch(
        """select distinct s.community_id from rk_subjects s join unnest($1::text[], $2::text[]) as u(subject_id, now)
           using (subject_id) where s.community_id <> u.now""",
        [e.subject_id for e in subjects], [e.community_id for e in subjects])
    await conn.execute(
        """insert into rk_subjects select s, c, k, n, array(select jsonb_array_elements_text(cats::jsonb)), g, r, null
           from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::date[])
           as u(s, c, k, n, cats, g, r)
           on conflict (subject_id) do update
           set community_id = excluded.community_id, kind = excluded.kind, name = excluded.name,
               categories = excluded.categories, gender = excluded.gender, registered_on = excluded.registered_on""",
        [e.subject_id for e in subjects], [e.community_id for e in subjects], [e.kind for e in subjects],
        [e.name for e in subjects], [json.dumps(e.categories) for e in subjects], [e.gender for e in subjects],
        [e.registered_on for e in subjects])
    return {r["community_id"] for r in left}


async def _items(conn: asyncpg.Connection, items: list[DeclarationSubmitted | DeductionRecorded]) -> None:
    descriptions = [ev.description or (ev.reason if isinstance(ev, DeductionRecorded) else "") for ev in items]
    await conn.execute(
        """insert into rk_items select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
           $6::date[]) on conflict do nothing""",
        [ev.item_id for ev in items], [ev.declared_by for ev in items], [ev.entered_by for ev in items],
        descriptions, [ev.rule_title for ev in items], [ev.occurred_on for ev in items])


async def _roster(conn: asyncpg.Connection, ev: object) -> bool:
    """Apply a change of the roster; True when a ranking may change (the community's roster)."""
    if isinstance(ev, SubjectCategoriesChanged):
        await conn.execute("update rk_subjects set categories = $2 where subject_id = $1", ev.subject_id,
                           list(ev.categories))
        return True
    if isinstance(ev, SubjectMovedOut):
        await conn.execute("update rk_subjects set moved_out_on = $2 where subject_id = $1", ev.subject_id,
                           ev.moved_out_on)
        return True
    if isinstance(ev, CommunityRegistered):
        await conn.execute("insert into rk_communities values ($1, $2) on conflict (community_id) do update "
                           "set name = excluded.name", ev.community_id, ev.name)
    return False
