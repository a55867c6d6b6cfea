"""Appending a batch's events to many streams, each at the version its decision was made on.

The same contract as ``EventStore.append`` (same envelopes, same hash chain, ``ConcurrencyError``
when a stream is not at the expected version or is appended to concurrently), in two statements for
the whole batch instead of two per stream: group commit needs it to keep its throughput.
TODO(store owner): this belongs in ``shared.store`` as a public ``append_many``; it uses the store's
envelope builder and insert so the rows are identical.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg

from shared.envelope import GENESIS_HASH, Envelope
from shared.events import Event
from shared.store import ConcurrencyError, EventStore, Recorded

Append = tuple[str, int, Sequence[Event], str, Recorded]  # stream, expected version, events, key, recorded


async def append_all(store: EventStore, conn: asyncpg.Connection, appends: Sequence[Append],
                     known: Mapping[str, tuple[int, str]]) -> list[list[Envelope]]:
    """Appends in order (a stream may appear twice: the second expects what the first left).

    ``known``: (version, last hash) of streams as their snapshots hold them. A stream a new version
    is expected of starts at the genesis hash; any other is read from the log. A snapshot behind the
    log cannot slip through: its next version is taken already (unique (stream, version))."""
    if not appends:
        return []
    current: dict[str, tuple[int, str]] = {}
    unknown = []
    for stream, expected, *_ in appends:
        if stream in current:
            continue
        if expected == 0:
            current[stream] = (0, GENESIS_HASH)
        elif stream in known and known[stream][0] == expected:
            current[stream] = known[stream]
        else:
            unknown.append(stream)
    if unknown:
        for r in await conn.fetch(
                """select distinct on (stream_id) stream_id, version, hash from events
                   where stream_id = any($1::text[]) order by stream_id, version desc""", unknown):
            current[r["stream_id"]] = (r["version"], r["hash"])
        for stream in unknown:
            current.setdefault(stream, (0, GENESIS_HASH))
    rows = []
    out: list[list[Envelope]] = []
    for stream, expected, events, key, recorded in appends:
        version, prev = current[stream]
        if version != expected:
            raise ConcurrencyError(f"stream {stream} is at version {version}, expected {expected}")
        pairs = store._envelopes(stream, version, prev, events, key, recorded)
        current[stream] = (version + len(pairs), pairs[-1][0].hash)
        rows += pairs
        out.append([e for e, _ in pairs])
    try:
        await store._insert(conn, rows)
    except asyncpg.UniqueViolationError as exc:
        raise ConcurrencyError("a stream of the batch was appended to concurrently") from exc
    return out
