"""Integration fixtures used by several modules: review's store on a real database and topic, a declarations feed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.review import state
from services.review.board import BoardProjection
from services.review.items import ItemsProjection
from shared import projection as projections
from shared import store as event_store
from shared.envelope import source_for
from shared.settings import Settings
from shared.store import EventStore
from shared.topics import REVIEW
from tests.integration.review.support import DeclarationsFeed


@pytest.fixture
async def review_store(pool: asyncpg.Pool, settings: Settings) -> EventStore:
    """Review's event store and read models, migrated in the test's own database."""
    async with pool.acquire() as conn:
        await event_store.migrate(conn)
        for p in (ItemsProjection(), BoardProjection()):
            await projections.migrate(conn, p)
        await conn.execute(state.SCHEMA)
    return EventStore(source_for("review"), REVIEW.name(settings))


@pytest.fixture
async def feed(settings: Settings) -> AsyncIterator[DeclarationsFeed]:
    """Stands in for the declarations service on its topic."""
    f = await DeclarationsFeed.start(settings)
    try:
        yield f
    finally:
        await f.close()
