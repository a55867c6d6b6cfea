"""The review board: everything the review service shows, projected from the review topic.

A month shows as certified only when its ``MonthCertified`` and all its awards are applied and
their count, total and digest match (``complete``). Rebuilt from offset 0 it is byte-identical:
only event fields and event times are stored, never the wall clock.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from shared.envelope import Envelope
from shared.events.review import (
    CertificationSigned,
    ItemCarriedOver,
    ItemDecision,
    ItemRejected,
    ItemReturned,
    ItemVerified,
    MonthCertified,
    MonthFinalised,
    NoticePosted,
    ObjectionDismissed,
    ObjectionRaised,
    ObjectionUpheld,
    PointsAwarded,
    PointsCorrected,
    VerificationOverruled,
    certification_check,
)
from shared.projection import Projection
from shared.topics import REVIEW

SCHEMA = """
create table if not exists board_status (
    item_id text primary key, community_id text not null, month text not null, status text not null,
    note text not null, decided_by text not null, decided_at timestamptz not null
);
create table if not exists board_awards (
    item_id text primary key, community_id text not null, month text not null, subject_id text not null,
    category text not null, dimension text not null, rule_code text not null, points integer not null
);
create index if not exists board_awards_by_month on board_awards (community_id, month);
create table if not exists board_months (
    community_id text not null, month text not null, count integer not null, total bigint not null,
    digest text not null, signed_by text[] not null, certified_at timestamptz not null, complete boolean not null,
    window_closes_at timestamptz, finalised_at timestamptz, primary key (community_id, month)
);
alter table board_months add column if not exists signer_names text[] not null default '{}';
alter table board_status add column if not exists carried_from text;
create table if not exists board_signatures (
    community_id text not null, month text not null, signer text not null, role text not null, name text not null,
    digest text not null, signed_at timestamptz not null, primary key (community_id, month, digest, signer)
);
create table if not exists board_notices (
    community_id text not null, month text not null, channel text not null, posted_at timestamptz not null,
    primary key (community_id, month, channel)
);
create table if not exists board_objections (
    objection_id text primary key, community_id text not null, month text not null, item_id text not null,
    raised_by text not null, reason text not null, raised_at timestamptz not null, status text not null,
    resolution text, resolved_by text, correction_id text
);
alter table board_objections add column if not exists raised_by_name text not null default '';
create table if not exists board_corrections (
    correction_id text primary key, community_id text not null, month text not null, item_id text not null,
    item_month text not null, subject_id text not null, delta integer not null, reason text not null,
    objection_id text, made_by text not null, made_at timestamptz not null
);
"""

AWARD = """insert into board_awards (item_id, community_id, month, subject_id, category, dimension, rule_code, points)
           select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                                $8::int[]) on conflict (item_id) do nothing"""

MONTH_CHECK = certification_check("board_awards")


class BoardProjection(Projection):
    name = "review_board"
    topics = (REVIEW,)
    tables = ("board_status", "board_awards", "board_months", "board_notices", "board_objections",
              "board_corrections", "board_signatures")
    schema = SCHEMA

    async def apply(self, conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None:
        awards: list[PointsAwarded] = []
        decided: dict[str, tuple[object, ...]] = {}  # a run of decisions, one row per item (the last)
        for env in envelopes:
            if isinstance(env.event, PointsAwarded):
                awards.append(env.event)
                continue
            if isinstance(env.event, ItemDecision) and not isinstance(env.event, ItemCarriedOver) and not awards:
                decided.pop(env.event.item_id, None)
                decided[env.event.item_id] = _decision(env)
                continue
            if decided:  # keep log order: a page of looks lands as one statement
                await _decisions(conn, list(decided.values()))
                decided = {}
            if awards:  # keep log order: a month's awards land before its MonthCertified
                await _awards(conn, awards)
                awards = []
            await _one(conn, env)
        if decided:
            await _decisions(conn, list(decided.values()))
        if awards:
            await _awards(conn, awards)


async def _awards(conn: asyncpg.Connection, awards: list[PointsAwarded]) -> None:
    cols = ("item_id", "community_id", "month", "subject_id", "category", "dimension", "rule_code", "points")
    await conn.execute(AWARD, *[[getattr(a, c) for a in awards] for c in cols])


_STATUS = {ItemVerified: "verified", ItemReturned: "returned", ItemRejected: "rejected"}


def _decision(env: Envelope) -> tuple[object, ...]:
    ev = env.event
    assert isinstance(ev, ItemDecision)
    status: str
    if isinstance(ev, VerificationOverruled):
        status, note = ev.decision, f"监督员改判：{ev.reason}"
    else:
        status = _STATUS[type(ev)]
        note = ev.to_fix if isinstance(ev, ItemReturned) else ev.reason if isinstance(ev, ItemRejected) else ""
    return ev.item_id, ev.community_id, ev.month, status, note, env.actor, env.time


async def _decisions(conn: asyncpg.Connection, rows: list[tuple[object, ...]]) -> None:
    """Upsert decisions (one row per item: the statement may not touch a row twice)."""
    await conn.execute(
        """insert into board_status (item_id, community_id, month, status, note, decided_by, decided_at)
           select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                $7::timestamptz[])
           on conflict (item_id) do update
           set month = excluded.month, status = excluded.status, note = excluded.note,
               decided_by = excluded.decided_by, decided_at = excluded.decided_at""",
        *[list(column) for column in zip(*rows, strict=True)])


async def _one(conn: asyncpg.Connection, env: Envelope) -> None:
    ev = env.event
    if isinstance(ev, ItemCarriedOver):  # waiting again, in the month it was carried into
        await conn.execute(
            """insert into board_status values ($1, $2, $3, 'submitted', $4, $5, $6, $7) on conflict (item_id) do update
               set month = excluded.month, status = excluded.status, note = excluded.note,
                   decided_by = excluded.decided_by, decided_at = excluded.decided_at,
                   carried_from = excluded.carried_from""",
            ev.item_id, ev.community_id, ev.to_month, ev.reason, env.actor, env.time, ev.month)
    elif isinstance(ev, CertificationSigned):
        await conn.execute("insert into board_signatures values ($1, $2, $3, $4, $5, $6, $7) on conflict do nothing",
                           ev.community_id, ev.month, ev.signer, ev.role, ev.name, ev.digest, ev.signed_at)
    elif isinstance(ev, ItemDecision):
        await _decisions(conn, [_decision(env)])
    elif isinstance(ev, MonthCertified):
        got = await conn.fetchrow(MONTH_CHECK, ev.community_id, ev.month)
        assert got is not None  # an aggregate always returns a row
        complete = (got["n"], got["total"], got["digest"]) == (ev.count, ev.total, ev.digest)
        await conn.execute(
            """insert into board_months (community_id, month, count, total, digest, signed_by, certified_at, complete,
                                         signer_names)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9) on conflict do nothing""",
            ev.community_id, ev.month, ev.count, ev.total, ev.digest, list(ev.signed_by), ev.certified_at, complete,
            list(ev.signer_names or ev.signed_by))
    elif isinstance(ev, NoticePosted):
        await conn.execute("insert into board_notices values ($1, $2, $3, $4) on conflict do nothing",
                           ev.community_id, ev.month, ev.channel, ev.posted_at)
        await conn.execute("""update board_months set window_closes_at = $3
                              where community_id = $1 and month = $2""", ev.community_id, ev.month, ev.window_closes_at)
    elif isinstance(ev, ObjectionRaised):
        await conn.execute(
            """insert into board_objections (objection_id, community_id, month, item_id, raised_by, reason, raised_at,
               status, raised_by_name) values ($1, $2, $3, $4, $5, $6, $7, 'open', $8) on conflict do nothing""",
            ev.objection_id, ev.community_id, ev.month, ev.item_id, ev.raised_by, ev.reason, env.time,
            ev.raised_by_name)
    elif isinstance(ev, ObjectionUpheld | ObjectionDismissed):
        upheld = isinstance(ev, ObjectionUpheld)
        await conn.execute(
            """update board_objections set status = $2, resolution = $3, resolved_by = $4, correction_id = $5
               where objection_id = $1""",
            ev.objection_id, "upheld" if upheld else "dismissed", ev.reason, env.actor,
            ev.correction_id if isinstance(ev, ObjectionUpheld) else None)
    elif isinstance(ev, PointsCorrected):
        await conn.execute(
            """insert into board_corrections values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
               on conflict do nothing""",
            ev.correction_id, ev.community_id, ev.month, ev.item_id, ev.item_month, ev.subject_id, ev.delta,
            ev.reason, ev.objection_id, env.actor, env.time)
    elif isinstance(ev, MonthFinalised):
        await conn.execute("update board_months set finalised_at = $3 where community_id = $1 and month = $2",
                           ev.community_id, ev.month, ev.finalised_at)


DIGESTS = {  # table -> deterministic order, for rebuild checks
    "board_status": "item_id", "board_awards": "item_id", "board_months": "community_id, month",
    "board_notices": "community_id, month, channel", "board_objections": "objection_id",
    "board_corrections": "correction_id", "board_signatures": "community_id, month, digest, signer",
}
