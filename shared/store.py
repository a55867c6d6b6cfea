"""PostgreSQL event store: the service's append-only log and its outbox.

Each row: unique (stream id, version) for optimistic concurrency, a global ``position``, the
exact body that goes to Kafka, and its link in the log's hash chain: ``log_position`` (1, 2, 3 …
per topic, no gaps), ``prev_hash`` and ``hash`` over the whole envelope (``shared.envelope.canonical``).

Appends are serialised per database by a transaction-scoped advisory lock taken right before
positions are assigned (``events_log_head``), and held until commit. So ``position`` and
``log_position`` follow commit order: a reader that sees position p sees every committed row
below it, the relay can page by position, and the chain is in the order the topic holds it.

Why this and not the alternatives: ``bench/relay_order.py`` ran each candidate on one stress
load (30 writers on 4 hot streams, each command claiming its idempotency key first, plus one
3 s transaction; 8 s per candidate, 2 rounds, 2 shared cores). Measured:

  candidate                  writer commits/s  order violations  longest wait*   commit→publish max
  advisory lock (this)       118–158           0                 0.011–0.015 s   0.045–0.082 s
  xid8 horizon, prefix-stop  304–536           0                 0.12–1.68 s     3.04–3.07 s
  xid8 horizon, plain        263–665           4–47              0.05–3.06 s     3.06–3.07 s
  (* the longest a committed row waited while rows committed after it were published)

- The plain ``xid8`` horizon (publish unpublished rows whose xid is below ``pg_snapshot_xmin``,
  in position order) reorders streams: a transaction that took its xid early (the idempotency
  claim) but appended v2 after v1 committed is below the horizon while v1's later xid is not,
  when an older open transaction pins the horizon between them. Stopping at the first row above
  the horizon fixes the order, but every row then waits for the oldest open transaction (the
  3 s one here; review's certification in production), and the chain cannot be made at append
  time since commit order is unknown until then.
- Debezium's outbox router (logical decoding: commit order by construction) would need Kafka
  Connect, a replication slot per service and a custom transform to emit the chain and the
  CloudEvents attributes: more moving parts than one lock, for the same order.
The lock's cost is throughput under many concurrent single-event commits: commits in one
database are serialised (no group commit of their WAL flushes). A writer appends last, right
before it commits (handlers already do: load, decide, append), and high-rate intake batches many
events per transaction (``append_new_streams``), so one lock acquisition carries the whole batch.
Records that predate the chain (``log_position`` null) keep their legacy per-stream hashes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.envelope import GENESIS_HASH, Envelope, chain_hash, encode_body, link_hash
from shared.events import Event, upcast

LOG_LOCK = 7_420_002  # pg_advisory_xact_lock key: one log writer at a time per database

SCHEMA = """
create table if not exists events (
    position       bigserial primary key,
    event_id       uuid not null unique,
    stream_id      text not null,
    version        integer not null check (version >= 1),
    type           text not null,
    topic          text not null,
    key            text not null,
    body           bytea not null,
    recorded_at    timestamptz not null,
    actor          text not null,
    correlation_id uuid not null,
    causation_id   uuid,
    prev_hash      text not null,
    hash           text not null,
    published_at   timestamptz,
    source         text,
    log_position   bigint,
    unique (stream_id, version)
);
-- tables made before the log chain: the new columns stay null on old rows (never rewritten)
alter table events add column if not exists source text;
alter table events add column if not exists log_position bigint;
create unique index if not exists events_log on events (topic, log_position);
create index if not exists events_unpublished on events (position) where published_at is null;
create table if not exists command_log (
    idempotency_key text primary key,
    fingerprint     text not null,
    status          integer,
    response        jsonb,
    created_at      timestamptz not null default now()
);
-- Take the log lock, then read the chain head in a fresh snapshot (a volatile function's
-- statements each take one under read committed): one round trip. Every append calls it, so it
-- also tells the relay (LISTEN events_appended) that rows are coming: delivered at commit, once
-- per transaction, never for one rolled back.
create or replace function events_log_head(p_topic text, out head_position bigint, out head_hash text)
language plpgsql volatile as $$
begin
    perform pg_advisory_xact_lock(7420002);
    perform pg_notify('events_appended', '');
    select log_position, hash into head_position, head_hash from events
     where topic = p_topic and log_position is not null order by log_position desc limit 1;
end $$;
"""


COPY_FROM = 1000  # appends of at least this many events use COPY instead of a multi-row insert
_COLUMNS = ["event_id", "stream_id", "version", "type", "topic", "key", "body", "recorded_at", "actor",
            "correlation_id", "causation_id", "prev_hash", "hash", "source", "log_position"]


class ConcurrencyError(Exception):
    """Someone else appended to the stream first (expected version no longer current)."""


@dataclass(frozen=True)
class Recorded:
    """Who and when, passed in by the handler (the domain never reads the clock)."""

    actor: str
    time: dt.datetime
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None


Append = tuple[str, int, Sequence[Event], str, Recorded]  # stream, expected version, events, key, who and when


async def migrate(conn: asyncpg.Connection) -> None:
    async with conn.transaction():  # services and tests migrate concurrently: one at a time
        await conn.execute("select pg_advisory_xact_lock($1)", LOG_LOCK + 1)
        await conn.execute(SCHEMA)


class EventStore:
    def __init__(self, source: str, topic: str) -> None:
        self.source = source  # CloudEvents source: ids are unique per source
        self.topic = topic

    async def stream_version(self, conn: asyncpg.Connection, stream_id: str) -> tuple[int, str]:
        row = await conn.fetchrow(
            "select version, hash from events where stream_id = $1 order by version desc limit 1", stream_id
        )
        return (row["version"], row["hash"]) if row else (0, GENESIS_HASH)

    async def append(
        self,
        conn: asyncpg.Connection,
        stream_id: str,
        expected_version: int,
        events: Sequence[Event],
        *,
        key: str,
        recorded: Recorded,
    ) -> list[Envelope]:
        """Append to one stream inside the caller's transaction (one is opened if there is none).

        Takes the log lock until the transaction ends: call it last, right before committing."""
        if not events:
            return []
        version, _ = await self.stream_version(conn, stream_id)
        if version != expected_version:
            raise ConcurrencyError(f"stream {stream_id} is at version {version}, expected {expected_version}")
        async with _transaction(conn):
            position, prev = await self._log_head(conn)
            envelopes = self._envelopes(stream_id, version, position, prev, events, key, recorded)
            try:
                await self._insert(conn, envelopes)
            except asyncpg.UniqueViolationError as exc:
                raise ConcurrencyError(f"stream {stream_id} was appended to concurrently") from exc
        return [e for e, _ in envelopes]

    async def append_new_streams(
        self, conn: asyncpg.Connection, streams: Sequence[tuple[str, Sequence[Event], str, Recorded]]
    ) -> list[list[Envelope]]:
        """Start many new streams (stream id, events, key, recorded) in one statement, inside the
        caller's transaction; e.g. one stream per points item. A stream that already exists makes the
        whole call fail with ConcurrencyError (unique (stream id, version))."""
        async with _transaction(conn):
            position, prev = await self._log_head(conn)
            batches = []
            for stream_id, events, key, recorded in streams:
                batches.append(self._envelopes(stream_id, 0, position, prev, events, key, recorded))
                if batches[-1]:
                    position, prev = batches[-1][-1][0].position or 0, batches[-1][-1][0].hash
            try:
                await self._insert(conn, [pair for batch in batches for pair in batch])
            except asyncpg.UniqueViolationError as exc:
                raise ConcurrencyError("one of the new streams already exists") from exc
        return [[e for e, _ in batch] for batch in batches]

    async def append_many(self, conn: asyncpg.Connection, appends: Sequence[Append],
                          known: Mapping[str, tuple[int, str]] | None = None) -> list[list[Envelope]]:
        """Append to many streams, each at the version its decision was made on, in one statement
        (group commit: a batch of commands). A stream may appear twice: the second expects what the
        first left. ``known``: (version, …) of streams as the caller's snapshots hold them, which
        spares reading them; a stale one cannot slip through (unique (stream, version)).
        ``ConcurrencyError`` when a stream is not at its expected version. Takes the log lock."""
        if not appends:
            return []
        current: dict[str, int] = {}
        unknown = []
        for stream, expected, *_ in appends:
            if stream in current:
                continue
            if expected == 0 or (known is not None and stream in known and known[stream][0] == expected):
                current[stream] = expected
            else:
                unknown.append(stream)
        if unknown:
            rows = await conn.fetch("""select stream_id, max(version) as version from events
                                       where stream_id = any($1::text[]) group by stream_id""", unknown)
            found = {r["stream_id"]: r["version"] for r in rows}
            current |= {stream: found.get(stream, 0) for stream in unknown}
        async with _transaction(conn):
            position, prev = await self._log_head(conn)
            pairs: list[tuple[Envelope, bytes]] = []
            out: list[list[Envelope]] = []
            for stream, expected, events, key, recorded in appends:
                version = current[stream]
                if version != expected:
                    raise ConcurrencyError(f"stream {stream} is at version {version}, expected {expected}")
                batch = self._envelopes(stream, version, position, prev, events, key, recorded)
                if batch:
                    position, prev = batch[-1][0].position or 0, batch[-1][0].hash
                current[stream] = version + len(batch)
                pairs += batch
                out.append([e for e, _ in batch])
            try:
                await self._insert(conn, pairs)
            except asyncpg.UniqueViolationError as exc:
                raise ConcurrencyError("a stream of the batch was appended to concurrently") from exc
        return out

    async def hold_log(self, conn: asyncpg.Connection) -> None:
        """Take the log lock now, until the caller's transaction ends: nothing can be appended between
        the caller's read and its append (its last resort after losing optimistic races; every other
        writer waits meanwhile, so hold it only for a short decision)."""
        await conn.execute("select pg_advisory_xact_lock($1)", LOG_LOCK)

    async def _log_head(self, conn: asyncpg.Connection) -> tuple[int, str]:
        """Lock the log (until commit) and read its head: (chain position, hash) of the last link."""
        row = await conn.fetchrow("select * from events_log_head($1)", self.topic)
        return (row["head_position"], row["head_hash"]) if row["head_position"] is not None else (0, GENESIS_HASH)

    def _envelopes(self, stream_id: str, version: int, position: int, prev: str, events: Sequence[Event],
                   key: str, recorded: Recorded) -> list[tuple[Envelope, bytes]]:
        if "\n" in f"{stream_id}{key}{recorded.actor}":
            raise ValueError("a stream id, key or actor may not contain a line feed (the chain recipe is lines)")
        correlation = str(recorded.correlation_id)
        causation = None if recorded.causation_id is None else str(recorded.causation_id)
        envelopes = []
        for ev in events:
            version += 1
            position += 1
            body = encode_body(ev)
            event_id = uuid.uuid4()
            digest = link_hash(position=position, prev_hash=prev, event_id=event_id, type_name=ev.type_name(),
                               source=self.source, subject=stream_id, version=version, time=recorded.time,
                               actor=recorded.actor, correlation_id=correlation, causation_id=causation, key=key,
                               body=body)
            envelopes.append((Envelope(
                id=event_id, source=self.source, type=ev.type_name(), subject=stream_id, sequence=version,
                time=recorded.time, actor=recorded.actor, correlation_id=correlation, causation_id=causation,
                key=key, prev_hash=prev, hash=digest, event=ev, position=position,
            ), body))
            prev = digest
        return envelopes

    async def _insert(self, conn: asyncpg.Connection, envelopes: list[tuple[Envelope, bytes]]) -> None:
        rows = [(e.id, e.subject, e.sequence, e.type, self.topic, e.key, body, e.time, e.actor,
                 e.correlation_id, e.causation_id,
                 e.prev_hash, e.hash, self.source, e.position) for e, body in envelopes]
        if len(rows) >= COPY_FROM:  # e.g. a month's certification: COPY is several times faster, same rows
            await conn.copy_records_to_table("events", records=rows, columns=_COLUMNS)
            return
        await conn.executemany(
            """insert into events (event_id, stream_id, version, type, topic, key, body, recorded_at, actor,
                                   correlation_id, causation_id, prev_hash, hash, source, log_position)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)""",
            rows,
        )

    async def load(self, conn: asyncpg.Connection, stream_id: str) -> list[Envelope]:
        rows = await conn.fetch("select * from events where stream_id = $1 order by version", stream_id)
        return [row_to_envelope(r, self.source) for r in rows]


def row_to_envelope(row: asyncpg.Record, source: str) -> Envelope:
    import orjson

    cls, body = upcast(row["type"], orjson.loads(row["body"]))
    return Envelope(
        id=row["event_id"], source=row["source"] or source, type=row["type"], subject=row["stream_id"],
        sequence=row["version"], time=row["recorded_at"], actor=row["actor"],
        correlation_id=str(row["correlation_id"]),
        causation_id=None if row["causation_id"] is None else str(row["causation_id"]), key=row["key"],
        prev_hash=row["prev_hash"], hash=row["hash"], event=cls.model_validate(body), position=row["log_position"],
    )


def _transaction(conn: asyncpg.Connection) -> Any:
    """A new transaction unless the caller is in one: the log lock must be held until the rows commit."""
    return conn.transaction() if not conn.is_in_transaction() else contextlib.nullcontext()


def verify_chain(rows: Sequence[tuple[str, int, str, bytes, str, str]]) -> list[str]:
    """LEGACY rows' check (per-stream chain, before the log chain) over (stream, version, type, body,
    prev_hash, hash) in stream order. The log chain is checked by ``shared.verify``."""
    problems = []
    last: dict[str, tuple[int, str]] = {}
    for stream, version, type_name, body, prev_hash, digest in rows:
        want_version, want_prev = last.get(stream, (0, GENESIS_HASH))
        if version != want_version + 1:
            problems.append(f"{stream}: version {version} follows {want_version}")
        if prev_hash != want_prev:
            problems.append(f"{stream} v{version}: prev_hash does not match the previous event")
        if chain_hash(prev_hash, type_name, stream, version, body) != digest:
            problems.append(f"{stream} v{version}: body does not match its hash")
        last[stream] = (version, digest)
    return problems
