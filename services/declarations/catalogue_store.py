"""The rule catalogue as the command side sees it: the ``catalogue`` stream folded, cached in memory.

A batch asks ``current(conn)``: one indexed look-up of the stream's version, and a reload only
when another process (or this one) published a version since. ``seed`` writes the seed file's
versions as the first events of an empty log; afterwards the file is never read again.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import asyncpg

from services.declarations.domain.catalogue import RuleCatalogue
from services.declarations.domain.catalogue_log import catalogue_of, seed_events
from services.declarations.domain.state import CATALOGUE_STREAM, Catalogue, fold
from shared.store import ConcurrencyError, EventStore, Recorded

SEED_ACTOR = "seed:rules.json"


class CatalogueCache:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._version = -1
        self._published = Catalogue()
        self._catalogue = RuleCatalogue(())

    @property
    def catalogue(self) -> RuleCatalogue:
        """The last catalogue loaded (for queries; decisions use ``current``)."""
        return self._catalogue

    def invalidate(self) -> None:
        self._version = -1

    async def current(self, conn: asyncpg.Connection) -> tuple[RuleCatalogue, Catalogue]:
        version = await conn.fetchval(
            "select coalesce(max(version), 0) from events where stream_id = $1", CATALOGUE_STREAM)
        if version != self._version:
            state = fold([env.event for env in await self.store.load(conn, CATALOGUE_STREAM)])
            self._published = state if isinstance(state, Catalogue) else Catalogue()
            self._catalogue = catalogue_of(self._published.published)
            self._version = version
        return self._catalogue, self._published

    async def seed(self, pool: asyncpg.Pool, rules_file: Path, recorded: Recorded) -> None:
        """An empty catalogue stream gets the seed file's versions (another process may win the race)."""
        data = json.loads(rules_file.read_bytes())  # noqa: ASYNC240 - once, at start
        events = [ev.model_copy(update={"note": f"初始目录（{rules_file.name}）"})
                  for ev in seed_events(data, SEED_ACTOR)]
        async with pool.acquire() as conn:
            try:
                async with conn.transaction():
                    if await conn.fetchval("select 1 from events where stream_id = $1 limit 1", CATALOGUE_STREAM):
                        return
                    await self.store.append(conn, CATALOGUE_STREAM, 0, events, key=CATALOGUE_STREAM,
                                            recorded=recorded)
            except ConcurrencyError:
                pass  # seeded by another process meanwhile
            await self.current(conn)


def seed_recorded(now: object) -> Recorded:
    import datetime as dt

    assert isinstance(now, dt.datetime)
    return Recorded(actor=SEED_ACTOR, time=now, correlation_id=uuid.uuid5(uuid.NAMESPACE_URL, "points:catalogue-seed"))
