"""PostgreSQL event store: the service's append-only log and its outbox.

Each row: unique (stream id, version) for optimistic concurrency, a global position, the
exact body that goes to Kafka, and the hash chain (prev_hash -> hash) per stream.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from shared.envelope import GENESIS_HASH, Envelope, chain_hash, encode_body
from shared.events import Event, upcast

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
    unique (stream_id, version)
);
create index if not exists events_unpublished on events (position) where published_at is null;
create table if not exists command_log (
    idempotency_key text primary key,
    fingerprint     text not null,
    status          integer,
    response        jsonb,
    created_at      timestamptz not null default now()
);
"""


COPY_FROM = 1000  # appends of at least this many events use COPY instead of a multi-row insert
_COLUMNS = ["event_id", "stream_id", "version", "type", "topic", "key", "body", "recorded_at", "actor",
            "correlation_id", "causation_id", "prev_hash", "hash"]


class ConcurrencyError(Exception):
    """Someone else appended to the stream first (expected version no longer current)."""


@dataclass(frozen=True)
class Recorded:
    """Who and when, passed in by the handler (the domain never reads the clock)."""

    actor: str
    time: dt.datetime
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None


async def migrate(conn: asyncpg.Connection) -> None:
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
        """Append to one stream inside the caller's transaction."""
        if not events:
            return []
        version, prev = await self.stream_version(conn, stream_id)
        if version != expected_version:
            raise ConcurrencyError(f"stream {stream_id} is at version {version}, expected {expected_version}")
        envelopes = self._envelopes(stream_id, version, prev, events, key, recorded)
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
        batches = [self._envelopes(stream_id, 0, GENESIS_HASH, events, key, recorded)
                   for stream_id, events, key, recorded in streams]
        try:
            await self._insert(conn, [pair for batch in batches for pair in batch])
        except asyncpg.UniqueViolationError as exc:
            raise ConcurrencyError("one of the new streams already exists") from exc
        return [[e for e, _ in batch] for batch in batches]

    def _envelopes(self, stream_id: str, version: int, prev: str, events: Sequence[Event], key: str,
                   recorded: Recorded) -> list[tuple[Envelope, bytes]]:
        envelopes = []
        for ev in events:
            version += 1
            body = encode_body(ev)
            digest = chain_hash(prev, ev.type_name(), stream_id, version, body)
            envelopes.append((Envelope(
                id=uuid.uuid4(), source=self.source, type=ev.type_name(), subject=stream_id, sequence=version,
                time=recorded.time, actor=recorded.actor, correlation_id=str(recorded.correlation_id),
                causation_id=None if recorded.causation_id is None else str(recorded.causation_id),
                key=key, prev_hash=prev, hash=digest, event=ev,
            ), body))
            prev = digest
        return envelopes

    async def _insert(self, conn: asyncpg.Connection, envelopes: list[tuple[Envelope, bytes]]) -> None:
        rows = [(e.id, e.subject, e.sequence, e.type, self.topic, e.key, body, e.time, e.actor,
                 e.correlation_id, e.causation_id, e.prev_hash, e.hash) for e, body in envelopes]
        if len(rows) >= COPY_FROM:  # e.g. a month's certification: COPY is several times faster, same rows
            await conn.copy_records_to_table("events", records=rows, columns=_COLUMNS)
            return
        await conn.executemany(
            """insert into events (event_id, stream_id, version, type, topic, key, body, recorded_at, actor,
                                   correlation_id, causation_id, prev_hash, hash)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)""",
            rows,
        )

    async def load(self, conn: asyncpg.Connection, stream_id: str) -> list[Envelope]:
        rows = await conn.fetch("select * from events where stream_id = $1 order by version", stream_id)
        return [row_to_envelope(r, self.source) for r in rows]


def row_to_envelope(row: asyncpg.Record, source: str) -> Envelope:
    import orjson

    cls, body = upcast(row["type"], orjson.loads(row["body"]))
    return Envelope(
        id=row["event_id"], source=source, type=row["type"], subject=row["stream_id"],
        sequence=row["version"], time=row["recorded_at"], actor=row["actor"],
        correlation_id=str(row["correlation_id"]),
        causation_id=None if row["causation_id"] is None else str(row["causation_id"]), key=row["key"],
        prev_hash=row["prev_hash"], hash=row["hash"], event=cls.model_validate(body),
    )


def verify_chain(rows: Sequence[tuple[str, int, str, bytes, str, str]]) -> list[str]:
    """Auditor's check over (stream, version, type, body, prev_hash, hash) in stream order."""
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
