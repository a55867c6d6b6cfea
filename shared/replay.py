"""Replays never touch live data: rebuild and "as of" write into a scratch schema; a swap puts it live.

- ``rebuild`` drops and recreates the scratch schema (``replay_<projection>`` unless named),
  replays the log into it through a pool whose ``search_path`` is only that schema (so the
  projection's unqualified SQL cannot reach a live table) and reports what it built: events
  applied, rows per table, a digest, the offsets it stopped at.
- ``swap`` puts a scratch build live in one transaction, under the exclusive form of the lock
  every runner transaction takes in shared form: the tables change schema both ways (the old
  live model stays in the scratch schema: swapping again undoes it), the offsets and dedup ids
  are exchanged with them, and the generation is bumped so running runners seek again (to the
  build's offsets: the one explicit step back, after which they catch up the rest of the log).
- A replay or swap aimed at the live schema, or at a schema not named ``replay_…``, is refused.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import multiprocessing
import re
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg
import uvloop
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.kafka import consumer_config
from shared.projection import (
    LOCK_CLASS,
    Projection,
    ProjectionRunner,
    load_projection,
    migrate,
    partitions_of,
)
from shared.settings import Settings

PREFIX = "replay_"
_NAME = re.compile(r"replay_[a-z0-9_]{1,55}")


class LiveTablesRefused(ValueError):
    """A replay or swap pointed at tables that are (or could be) live."""


def scratch_name(projection: Projection, suffix: str = "") -> str:
    return f"{PREFIX}{projection.name}{suffix}"


SWAPPED = "projection_swapped"  # NOTIFY channel: a swap put another read model live (payload: its name)


def refuse_live(schema: str | None, projection: Projection, live: str | None = None) -> None:
    if schema == live or not _NAME.fullmatch(schema or ""):
        raise LiveTablesRefused(
            f"refusing to replay {projection.name} into schema {schema!r}: "
            + ("it holds the live read model" if schema == live else f"a scratch schema is named {PREFIX}…")
            + f"; replays write into a scratch schema (default {scratch_name(projection)}) and go live only by "
              f"`python -m shared.projection swap <module:Class> --scratch <schema>`")


@dataclass
class Replay:
    """What a replay built."""

    projection: str
    schema: str
    events: int
    until: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    digest: str = ""  # sha256 over "table digest" lines: equal digests = byte-identical read models
    offsets: dict[str, int] = field(default_factory=dict)  # topic:partition -> next offset

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def describe(conn: asyncpg.Connection, projection: Projection, schema: str, *, digest: bool = True
                   ) -> tuple[dict[str, int], dict[str, str], str, dict[str, int]]:
    """Rows per table, per-table md5 over the rows in text order, their sha256, stored offsets."""
    rows, digests = {}, {}
    for table in projection.tables:
        qualified = f'"{schema}"."{table}"'
        rows[table] = await conn.fetchval(f"select count(*) from {qualified}")
        if digest:
            digests[table] = await conn.fetchval(
                f"select md5(coalesce(string_agg(t::text, E'\\n' order by t::text collate \"C\"), '')) "
                f"from {qualified} t")
    total = hashlib.sha256("".join(f"{t} {d}\n" for t, d in sorted(digests.items())).encode()).hexdigest()
    offsets = {f"{r['topic']}:{r['partition']}": r["next_offset"] for r in await conn.fetch(
        f'select topic, partition, next_offset from "{schema}".projection_offsets where projection = $1 '
        "order by topic, partition", projection.name)}
    return rows, digests, total if digest else "", offsets


async def scratch_pool(settings: Settings, schema: str, size: int = 4) -> asyncpg.Pool:
    """Connections that see only the scratch schema (and pg_catalog)."""
    return await asyncpg.create_pool(settings.database_url, min_size=1, max_size=size,
                                     server_settings={"search_path": schema})


async def rebuild(pool: asyncpg.Pool, projection: Projection, settings: Settings, *, until: dt.datetime | None = None,
                  workers: int = 1, into: str | None = None, digest: bool = True,
                  stop_at: Mapping[TopicPartition, int] | None = None) -> Replay:
    """Replay the log from offset 0 (up to ``until``) into a fresh scratch schema; the live pool's
    tables are only read to learn which schema is live.

    With ``workers`` > 1 and a partition-local projection, the partitions are shared out: this
    process replays the first share while worker processes replay the others. The secondary
    indexes of the projection's tables are built at the end."""
    schema = into or scratch_name(projection, "" if until is None else "_as_of")
    async with pool.acquire() as conn:
        refuse_live(schema, projection, live=await conn.fetchval("select current_schema()"))
        await conn.execute(f'drop schema if exists "{schema}" cascade; create schema "{schema}"')
    scratch = await scratch_pool(settings, schema)
    try:
        async with scratch.acquire() as conn:
            await migrate(conn, projection)
            deferred = await defer_indexes(conn, projection, schema)
        if stop_at is not None:  # as another reader stood: one process reads every partition to its offset
            events = await ProjectionRunner(scratch, projection, settings).catch_up(fresh=True, stop_at=stop_at)
        else:
            events = await _replay(scratch, projection, settings, schema, until, workers)
        async with scratch.acquire() as conn:
            await conn.execute("set maintenance_work_mem = '256MB'")
            for definition in deferred:
                await conn.execute(definition)
            rows, digests, total, offsets = await describe(conn, projection, schema, digest=digest)
    finally:
        await scratch.close()
    return Replay(projection.name, schema, events, None if until is None else until.isoformat(), rows, digests, total,
                  offsets)


async def defer_indexes(conn: asyncpg.Connection, projection: Projection, schema: str) -> list[str]:
    """Drop the secondary indexes of the projection's tables in the scratch schema and return their
    definitions, to build once the log is in: one sort per index instead of a b-tree insert per row.
    Indexes behind a constraint (primary keys, unique) stay: ``apply`` relies on them (upserts, and
    a duplicate row failing its batch, which the runner then dead-letters alone)."""
    rows = await conn.fetch(
        """select format('%I.%I', n.nspname, ic.relname) as name, pg_get_indexdef(i.indexrelid) as definition
           from pg_index i join pg_class ic on ic.oid = i.indexrelid join pg_class t on t.oid = i.indrelid
           join pg_namespace n on n.oid = t.relnamespace
           where n.nspname = $1 and t.relname = any($2::text[])
             and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)
           order by ic.relname""", schema, list(projection.tables))
    for row in rows:
        await conn.execute(f"drop index {row['name']}")
    return [row["definition"] for row in rows]


async def _replay(scratch: asyncpg.Pool, projection: Projection, settings: Settings, schema: str,
                  until: dt.datetime | None, workers: int) -> int:
    runner = ProjectionRunner(scratch, projection, settings)
    if workers <= 1 or not projection.partition_local:
        return await runner.catch_up(until=until, fresh=True)
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, runner.topic_names)
    finally:
        await consumer.stop()
    shares = [tps[i::workers] for i in range(workers) if tps[i::workers]]
    if len(shares) < 2:  # a single partition: nothing to share out
        return await runner.catch_up(until=until, fresh=True)
    spec = f"{type(projection).__module__}:{type(projection).__qualname__}"
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(len(shares) - 1, mp_context=multiprocessing.get_context("spawn")) as executor:
        others = [loop.run_in_executor(executor, _replay_share, spec, settings, schema,
                                       [(tp.topic, tp.partition) for tp in s], until) for s in shares[1:]]
        here = await runner.catch_up(share=shares[0], fresh=True, until=until)
        return here + sum(await asyncio.gather(*others))


def _replay_share(spec: str, settings: Settings, schema: str, share: list[tuple[str, int]],
                  until: dt.datetime | None) -> int:
    """Worker process of ``rebuild``: replay one share of the partitions into the scratch schema."""
    from shared.events import load_catalogue

    load_catalogue()

    async def replay() -> int:
        pool = await scratch_pool(settings, schema, size=2)
        try:
            runner = ProjectionRunner(pool, load_projection(spec), settings)
            return await runner.catch_up(share={TopicPartition(t, p) for t, p in share}, fresh=True, until=until)
        finally:
            await pool.close()

    return uvloop.run(replay())  # the loop the services run on (uvicorn with uvloop)


async def swap(pool: asyncpg.Pool, projection: Projection, scratch: str | None = None) -> dict[str, Any]:
    """Put a scratch build live, atomically; the previous live model goes to the scratch schema."""
    schema = scratch or scratch_name(projection)
    name = projection.name
    async with pool.acquire() as conn:
        live = await conn.fetchval("select current_schema()")
        refuse_live(schema, projection, live=live)
        missing = [t for t in (*projection.tables, "projection_offsets", "projection_recent")
                   if await conn.fetchval("select to_regclass($1)", f'"{schema}"."{t}"') is None]
        if missing:
            raise LiveTablesRefused(f"nothing to swap: {schema} lacks {', '.join(missing)} (run rebuild first)")
        async with conn.transaction():
            # a reader holding a live table for long makes the swap fail with a clear error, not hang
            await conn.execute("set local lock_timeout = '30s'")
            await conn.execute("select pg_advisory_xact_lock($1, hashtext($2))", LOCK_CLASS, name)
            hold = f"{PREFIX}swap_{name}"[:63]
            await conn.execute(f'drop schema if exists "{hold}" cascade; create schema "{hold}"')
            for table in projection.tables:
                if await conn.fetchval("select to_regclass($1)", f'"{live}"."{table}"') is not None:
                    await conn.execute(f'alter table "{live}"."{table}" set schema "{hold}"')
                await conn.execute(f'alter table "{schema}"."{table}" set schema "{live}"')
                if await conn.fetchval("select to_regclass($1)", f'"{hold}"."{table}"') is not None:
                    await conn.execute(f'alter table "{hold}"."{table}" set schema "{schema}"')
            lit = _literal(name)
            for table in ("projection_offsets", "projection_recent"):  # exchanged along with the tables
                await conn.execute(
                    f'create temporary table swap_held on commit drop as '
                    f'select * from "{live}"."{table}" where projection = {lit}; '
                    f'delete from "{live}"."{table}" where projection = {lit}; '
                    f'insert into "{live}"."{table}" select * from "{schema}"."{table}" where projection = {lit}; '
                    f'delete from "{schema}"."{table}" where projection = {lit}; '
                    f'insert into "{schema}"."{table}" select * from swap_held; drop table swap_held')
            await conn.execute(f'drop schema "{hold}"')
            generation = await conn.fetchval(
                """insert into projection_live values ($1, 1) on conflict (projection)
                   do update set generation = projection_live.generation + 1 returning generation""", name)
            await conn.execute("select pg_notify($1, $2)", SWAPPED, name)  # for caches of the read model, on commit
        _, _, _, offsets = await describe(conn, projection, live, digest=False)
    return {"projection": name, "live": live, "previous_live_kept_in": schema, "generation": generation,
            "offsets": offsets}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
