"""Helpers for review tests: a stand-in declarations outbox, a review database, waiting for Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from shared import store as event_store
from shared.envelope import source_for
from shared.events.declarations import (
    DeclarationsEvent,
    DeclarationSubmitted,
    DeductionRecorded,
    PointsItem,
    SubjectRegistered,
)
from shared.relay import Relay
from shared.settings import Settings
from shared.store import EventStore, Recorded
from shared.topics import DECLARATIONS
from tests.support.services import RunningService, running_service
from tests.support.settings import create_database, fresh_settings

T0 = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)


def declaration(n: int, *, community: str = "c-01", day: dt.date = dt.date(2026, 11, 20), points: int = 2,
                subject: str | None = None, by: str = "rec-1", category: str = "resident",
                dimension: str = "community_building") -> DeclarationSubmitted:
    return DeclarationSubmitted(
        item_id=f"{community}-i{n:06d}", community_id=community, subject_id=subject or f"s-{n % 7:02d}",
        category=category, rule_code="CB01", rule_version=1, dimension=dimension, quantity=1, points=points,
        channel="oral", occurred_on=day, description="义务劳动", entered_by=by, declared_by=by)


def deduction(n: int, *, community: str = "c-01", day: dt.date = dt.date(2026, 11, 21)) -> DeductionRecorded:
    return DeductionRecorded(
        item_id=f"{community}-d{n:06d}", community_id=community, subject_id=f"s-{n % 7:02d}", category="resident",
        rule_code="CH01", rule_version=1, dimension="civility_hygiene", quantity=1, points=-3, channel="oral",
        occurred_on=day, description="", entered_by="rec-1", declared_by="rec-1", reason="乱扔垃圾")


@dataclass
class DeclarationsFeed:
    """Plays the declarations service: its own database, outbox and relay onto the declarations topic."""

    pool: asyncpg.Pool
    relay: Relay
    store: EventStore

    @classmethod
    async def start(cls, settings: Settings) -> DeclarationsFeed:
        dsn = await create_database(settings, "decl")
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        async with pool.acquire() as conn:
            await event_store.migrate(conn)
        feed_settings = settings.model_copy(update={"database_url": dsn})
        return cls(pool, Relay(pool, feed_settings, source_for("declarations")),
                   EventStore(source_for("declarations"), DECLARATIONS.name(settings)))

    async def publish(self, events: Sequence[DeclarationsEvent]) -> None:
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                for ev in events:
                    if isinstance(ev, PointsItem):
                        stream, key = f"declaration-{ev.item_id}", ev.subject_id
                    elif isinstance(ev, SubjectRegistered):
                        stream, key = f"subject-{ev.subject_id}", ev.subject_id
                    else:
                        stream = key = f"community-{getattr(ev, 'community_id', '')}"
                    await self.store.append(conn, stream, 0, [ev], key=key, recorded=Recorded(
                        actor="declarations-test", time=T0, correlation_id=uuid.uuid4()))
            while await self.relay.publish_batch(conn):
                pass

    async def close(self) -> None:
        if self.relay.producer is not None:
            await self.relay.producer.stop()
        await self.pool.close()


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


@dataclass
class ReviewUnderTest:
    """One review service process per test module, fed by a stand-in declarations outbox."""

    service: RunningService
    settings: Settings
    feed: DeclarationsFeed
    clock_file: Path

    def set_clock(self, now: dt.datetime) -> None:
        self.clock_file.write_text(now.isoformat())

    async def event_count(self) -> int:
        conn = await asyncpg.connect(self.settings.database_url)
        try:
            return await conn.fetchval("select count(*) from events")  # type: ignore[no-any-return]
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def review_service(stack: tuple[str, str], *, clock_adjustable: bool = False
                         ) -> AsyncIterator[ReviewUnderTest]:
    settings = await fresh_settings(*stack, topic_partitions=4)
    clock_dir = tempfile.TemporaryDirectory(prefix="review-clock-")
    clock_file = Path(clock_dir.name) / "now"
    clock_file.write_text("")
    feed = await DeclarationsFeed.start(settings)
    previous = os.environ.get("REVIEW_CLOCK_FILE")
    os.environ["REVIEW_CLOCK_FILE"] = str(clock_file)  # the child process inherits it (tests and demos only)
    os.environ["REVIEW_CLOCK_ADJUSTABLE"] = "true" if clock_adjustable else "false"
    try:
        with running_service("review", settings) as svc:
            yield ReviewUnderTest(svc, settings, feed, clock_file)
    finally:
        clock_dir.cleanup()
        os.environ.pop("REVIEW_CLOCK_ADJUSTABLE", None)
        if previous is None:
            os.environ.pop("REVIEW_CLOCK_FILE", None)
        else:
            os.environ["REVIEW_CLOCK_FILE"] = previous
        await feed.close()
