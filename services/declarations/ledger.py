"""The ledger (台账): every points item with subject, rule, dimension, points, channel, who entered
it, evidence and status.

A projection of the declarations topic (items, subject names) and the review topic (status);
rebuilt from the log, never written by a command, no wall clock. The review topic is ordered per
community, so the last review event for an item is its status.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import cast
from zoneinfo import ZoneInfo

import asyncpg

from shared.envelope import Envelope
from shared.events.declarations import (
    DeclarationSubmitted,
    DeductionRecorded,
    PointsItem,
    SubjectRegistered,
)
from shared.events.review import (
    ItemCarriedOver,
    ItemRejected,
    ItemReturned,
    ItemVerified,
    PointsAwarded,
    PointsCorrected,
    VerificationOverruled,
)
from shared.projection import Projection
from shared.settings import get_settings
from shared.topics import DECLARATIONS, REVIEW

SCHEMA = """
create table if not exists ledger (
    item_id       text primary key,
    community_id  text not null,
    subject_id    text not null,
    category      text not null,
    rule_code     text not null,
    rule_version  integer not null,
    rule_title    text not null default '',
    dimension     text not null,
    quantity      integer not null,
    points        integer not null,
    channel       text not null,
    kind          text not null default 'declaration',
    occurred_on   date not null,
    month         text not null,
    description   text not null,
    reason        text not null default '',
    evidence      text[] not null,
    entered_by    text not null,
    declared_by   text not null,
    source_id     text,
    status        text not null,
    recorded_at   timestamptz not null,
    event_id      uuid not null,
    stream_seq    integer not null
);
alter table ledger add column if not exists rule_title text not null default '';
alter table ledger add column if not exists kind text not null default 'declaration';
alter table ledger add column if not exists reason text not null default '';
alter table ledger add column if not exists source_id text;
create index if not exists ledger_by_community_month on ledger (community_id, month);
create index if not exists ledger_by_subject on ledger (subject_id, month);
create table if not exists ledger_subjects (
    subject_id text primary key, community_id text not null, name text not null
);
create table if not exists ledger_review (
    item_id text primary key, status text not null, note text not null
);
"""

_REVIEW_STATUS: dict[type, str] = {ItemVerified: "verified", ItemReturned: "returned", ItemRejected: "rejected",
                  PointsAwarded: "certified"}


def _review(ev: object) -> tuple[str, str, str] | None:
    if isinstance(ev, VerificationOverruled):
        return ev.item_id, ev.decision, ev.reason
    if type(ev) is ItemCarriedOver:  # reached review after its month was certified: reviewed next month
        carried = cast(ItemCarriedOver, ev)
        return carried.item_id, "carried", f"已转入 {carried.to_month} 月审核：{carried.reason}"
    status = _REVIEW_STATUS.get(type(ev))
    if status is None:
        return None
    fields = ev.__dict__  # not getattr(ev, name, ""): a missing attribute takes pydantic's slow path
    return fields["item_id"], status, fields.get("reason") or fields.get("to_fix") or ""


@lru_cache(maxsize=1)
def _county_tz() -> ZoneInfo:
    return ZoneInfo(get_settings().timezone)


LEDGER_COLUMNS = [
    "item_id", "community_id", "subject_id", "category", "rule_code", "rule_version", "rule_title", "dimension",
    "quantity", "points", "channel", "kind", "occurred_on", "month", "description", "reason", "evidence",
    "entered_by", "declared_by", "source_id", "status", "recorded_at", "event_id", "stream_seq",
]


class LedgerProjection(Projection):
    name = "ledger"
    topics = (DECLARATIONS, REVIEW)
    tables = ("ledger", "ledger_subjects", "ledger_review")
    schema = SCHEMA
    partition_local = True  # item rows by item, names by subject, statuses by item (one community)

    async def apply(self, conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None:
        items, subjects, reviews = [], [], []
        for env in envelopes:
            ev = env.event
            kind = type(ev)  # exact type checks: isinstance on pydantic models goes through ABCMeta, slowly
            if kind is DeclarationSubmitted or kind is DeductionRecorded:
                it = cast(PointsItem, ev)
                deduction = kind is DeductionRecorded
                items.append((
                    it.item_id, it.community_id, it.subject_id, it.category, it.rule_code, it.rule_version,
                    it.rule_title, it.dimension, it.quantity, it.points, it.channel,
                    "deduction" if deduction else "declaration", it.occurred_on, it.occurred_on.isoformat()[:7],
                    it.description, cast(DeductionRecorded, it).reason if deduction else "", list(it.evidence),
                    it.entered_by, it.declared_by, it.source_id, "submitted", env.time, env.id, env.sequence,
                ))
            elif kind is PointsCorrected:  # a correction is a line of its own; the original is never edited
                c = cast(PointsCorrected, ev)
                items.append((
                    c.correction_id, c.community_id, c.subject_id, c.category, c.rule_code, 0, "更正", c.dimension, 1,
                    c.delta, "correction", "correction", env.time.astimezone(_county_tz()).date(), c.month, c.reason,
                    c.reason, [], env.actor, env.actor, c.item_id, "corrected", env.time, env.id, env.sequence,
                ))
            elif kind is SubjectRegistered:
                registered = cast(SubjectRegistered, ev)
                subjects.append((registered.subject_id, registered.community_id, registered.name))
            elif (review := _review(ev)) is not None:
                reviews.append(review)
        if items:
            # COPY straight into the table: the runner already applies each event once, and an item id
            # seen twice in different events fails the batch, which the runner then dead-letters alone.
            await conn.copy_records_to_table("ledger", records=items, columns=LEDGER_COLUMNS)
        if subjects:
            await conn.executemany(
                """insert into ledger_subjects values ($1, $2, $3)
                   on conflict (subject_id) do update set name = excluded.name""", subjects)
        if reviews:  # one statement for the batch (a certification is an award per item), one row per item
            last = {item_id: (status, note) for item_id, status, note in reviews}  # log order: the last wins
            await conn.execute(
                """insert into ledger_review select * from unnest($1::text[], $2::text[], $3::text[])
                   on conflict (item_id) do update set status = excluded.status, note = excluded.note""",
                list(last), [status for status, _ in last.values()], [note for _, note in last.values()])
