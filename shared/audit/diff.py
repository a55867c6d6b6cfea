"""A replay beside the live read models, compared row by row.

The live side is read in one REPEATABLE READ snapshot: the projection's stored offsets and its
tables together, so a runner applying events meanwhile cannot tear the comparison. The replay is
built in the auditor's own database (a scratch schema there; the service's database is only
read) up to exactly those offsets, or as of a time, or of offsets the auditor gives. Rows are
matched by each table's primary key; a row only one side has, or a column whose value differs,
is reported. A projection's work queues (``Projection.queues``: rows the service takes off as it
works, e.g. review's items waiting for the late-item policy) are rebuilt but not compared.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg
import orjson
from aiokafka import TopicPartition

from shared import replay
from shared.projection import Projection
from shared.settings import Settings

Row = dict[str, Any]


def read_models(service: str) -> tuple[Projection, ...]:
    """The projections a service runs (its composition root's ``READ_MODELS``)."""
    app = importlib.import_module(f"services.{service}.app")
    return tuple(cls() for cls in getattr(app, "READ_MODELS", ()))


@dataclass
class RowDiff:
    table: str
    key: str
    kind: str  # only_live, only_replay, differs
    columns: dict[str, list[Any]] = field(default_factory=dict)  # column -> [live, replay]


@dataclass
class ModelDiff:
    service: str
    projection: str
    stopped_at: str  # where the replay stopped: the live model's offsets, a time, or given offsets (zh-CN)
    events: int
    rows_live: dict[str, int]
    rows_replay: dict[str, int]
    differences: list[RowDiff] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)  # work queues: not compared (the service prunes them)

    @property
    def same(self) -> bool:
        return not self.differences

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"same": self.same}


async def primary_key(conn: asyncpg.Connection, schema: str, table: str) -> list[str]:
    cols = await conn.fetch(
        "select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) "
        "where i.indrelid = format('%I.%I', $1::text, $2::text)::regclass and i.indisprimary order by a.attnum",
        schema, table)
    return [r["attname"] for r in cols]


async def rows_of(conn: asyncpg.Connection, schema: str, table: str, key: list[str],
                  community: str | None) -> dict[str, Row]:
    rows = [orjson.loads(r[0]) for r in await conn.fetch(f'select to_jsonb(t)::text from "{schema}"."{table}" t')]
    if community is not None:
        rows = [r for r in rows if r.get("community_id", community) == community]
    columns = key or sorted(rows[0]) if rows else key
    return {"|".join(str(r.get(c)) for c in columns): r for r in rows}


def compare_rows(table: str, live: Mapping[str, Row], built: Mapping[str, Row]) -> list[RowDiff]:
    out = [RowDiff(table, k, "only_live") for k in sorted(live.keys() - built.keys())]
    out += [RowDiff(table, k, "only_replay") for k in sorted(built.keys() - live.keys())]
    for k in sorted(live.keys() & built.keys()):
        a, b = live[k], built[k]
        cols = {c: [a.get(c), b.get(c)] for c in sorted(a.keys() | b.keys()) if a.get(c) != b.get(c)}
        if cols:
            out.append(RowDiff(table, k, "differs", cols))
    return out


@dataclass
class Snapshot:
    """A projection's live tables and stored offsets, read in one snapshot."""

    offsets: dict[str, int]  # "topic:partition" -> next offset
    keys: dict[str, list[str]]  # table -> primary key columns
    rows: dict[str, dict[str, Row]]  # table -> key -> row


async def snapshot(projection: Projection, live_dsn: str, community: str | None = None) -> Snapshot:
    live = await asyncpg.connect(live_dsn)
    try:
        async with live.transaction(isolation="repeatable_read", readonly=True):
            schema = await live.fetchval("select current_schema()")
            offsets = {f"{r['topic']}:{r['partition']}": r["next_offset"] for r in await live.fetch(
                "select topic, partition, next_offset from projection_offsets where projection = $1",
                projection.name)}
            keys = {t: await primary_key(live, schema, t) for t in projection.tables}
            rows = {t: await rows_of(live, schema, t, keys[t], community) for t in projection.tables}
    finally:
        await live.close()
    return Snapshot(offsets, keys, rows)


async def replayed(projection: Projection, settings: Settings, keys: Mapping[str, list[str]], *,
                   until: dt.datetime | None = None, stop_at: Mapping[str, int] | None = None,
                   community: str | None = None) -> tuple[int, dict[str, dict[str, Row]]]:
    """Replay into a scratch schema of the auditor's database (``settings.database_url``), read the
    rows, drop the schema; returns (events applied, table -> key -> row)."""
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        built = await replay.rebuild(pool, projection, settings, until=until, into=f"replay_{projection.name}_audit",
                                     digest=False, stop_at=None if stop_at is None else _partitions(stop_at))
        async with pool.acquire() as conn:
            rows = {t: await rows_of(conn, built.schema, t, list(keys[t]), community) for t in projection.tables}
            await conn.execute(f'drop schema "{built.schema}" cascade')
    finally:
        await pool.close()
    return built.events, rows


def differences(projection: Projection, live: Mapping[str, Mapping[str, Row]],
                built: Mapping[str, Mapping[str, Row]]) -> list[RowDiff]:
    """Row by row, every table but the work queues."""
    out: list[RowDiff] = []
    for t in projection.tables:
        if t not in projection.queues:
            out += compare_rows(t, live[t], built[t])
    return out


async def compare(service: str, projection: Projection, live_dsn: str, settings: Settings, *,
                  until: dt.datetime | None = None, offsets: Mapping[str, int] | None = None,
                  community: str | None = None) -> ModelDiff:
    """Replay ``projection`` into the auditor's database (``settings.database_url``) and compare it
    with the live tables of ``live_dsn``: by default up to the offsets the live model stands at."""
    live = await snapshot(projection, live_dsn, community)
    if until is not None:
        stop, how = None, f"截至 {until.isoformat()}"
    elif offsets is not None:
        stop, how = dict(offsets), "给定偏移"
    else:
        stop, how = live.offsets, "线上读模型所在偏移"
    events, rows = await replayed(projection, settings, live.keys, until=until, stop_at=stop, community=community)
    compared = [t for t in projection.tables if t not in projection.queues]
    return ModelDiff(service, projection.name, how, events, {t: len(live.rows[t]) for t in compared},
                     {t: len(rows[t]) for t in compared}, differences(projection, live.rows, rows),
                     list(projection.queues))


def _partitions(offsets: Mapping[str, int]) -> dict[TopicPartition, int]:
    out = {}
    for name, offset in offsets.items():
        topic, _, part = name.rpartition(":")
        out[TopicPartition(topic, int(part))] = int(offset)
    return out
