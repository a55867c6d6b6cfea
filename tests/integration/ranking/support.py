"""Ranking test helpers: stand-in declarations and review outboxes, a scripted county year."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg

from services.ranking.emit import Emitter
from services.ranking.projection import RankingProjection
from services.ranking.tables import SERVICE
from shared import projection as projections
from shared import store as event_store
from shared.envelope import source_for
from shared.events import Event
from shared.events.declarations import CommunityRegistered, SubjectRegistered
from shared.events.review import MonthCertified, PointsAwarded, PointsCorrected, certification_digest
from shared.projection import ProjectionRunner
from shared.relay import Relay
from shared.settings import Settings
from shared.store import EventStore, Recorded
from shared.topics import BY_SERVICE
from tests.integration.review.support import create_database

T0 = dt.datetime(2026, 1, 10, 2, 0, tzinfo=dt.UTC)


@dataclass
class Outbox:
    """Plays another service: its own database, outbox and relay onto its own topic."""

    pool: asyncpg.Pool
    relay: Relay
    store: EventStore
    versions: dict[str, int] = field(default_factory=dict)

    @classmethod
    async def start(cls, settings: Settings, service: str) -> Outbox:
        dsn = await create_database(settings, service)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        async with pool.acquire() as conn:
            await event_store.migrate(conn)
        s = settings.model_copy(update={"database_url": dsn})
        return cls(pool, Relay(pool, s, source_for(service, settings)),
                   EventStore(source_for(service, settings), BY_SERVICE[service].name(settings)))

    async def publish(self, stream: str, key: str, events: Sequence[Event], actor: str = "tester") -> None:
        async with self.pool.acquire() as conn:
            version = self.versions.get(stream, 0)
            await self.store.append(conn, stream, version, events, key=key, recorded=Recorded(
                actor=actor, time=T0, correlation_id=uuid.uuid4()))
            self.versions[stream] = version + len(events)
            while await self.relay.publish_batch(conn):
                pass

    async def close(self) -> None:
        await self.relay.close()
        await self.pool.close()


class County:
    """A community's roster and certified months, published as the two services would."""

    def __init__(self, declarations: Outbox, review: Outbox, community: str = "c-01") -> None:
        self.declarations, self.review, self.community = declarations, review, community
        self.n = 0

    async def register(self, subjects: Sequence[tuple[str, str, tuple[str, ...], dt.date, str]]) -> None:
        events: list[Event] = [CommunityRegistered(community_id=self.community, name="海雀社区")]
        events += [SubjectRegistered(subject_id=sid, community_id=self.community, kind="person", name=name,
                                     categories=cats, gender=gender, registered_on=joined)
                   for sid, name, cats, joined, gender in subjects]
        await self.declarations.publish(f"community-{self.community}", self.community, events)

    async def certify(self, month: str, points: dict[tuple[str, str], int]) -> None:
        """One award per (subject, category) with the given points, then MonthCertified."""
        awards = []
        for (sid, cat), p in sorted(points.items()):
            self.n += 1
            awards.append(PointsAwarded(item_id=f"{self.community}-{month}-{self.n:05d}", community_id=self.community,
                                        month=month, subject_id=sid, category=cat, dimension="community_building",
                                        rule_code="CB01", points=p))
        closing = MonthCertified(community_id=self.community, month=month, count=len(awards),
                                 total=sum(a.points for a in awards), digest=certification_digest(awards),
                                 signed_by=("sec-1", "lg-2"), certified_at=T0, signer_names=("书记", "组员"))
        await self.review.publish(f"community-{self.community}", self.community, [*awards, closing], "sec-1")

    async def correct(self, month: str, sid: str, cat: str, delta: int) -> None:
        self.n += 1
        await self.review.publish(f"community-{self.community}", self.community, [PointsCorrected(
            correction_id=f"corr-{self.n}", community_id=self.community, month=month, item_id="x", item_month=month,
            subject_id=sid, category=cat, dimension="community_building", rule_code="CB01", delta=delta,
            reason="异议成立，更正")], "sup-1")


async def live_runner(pool: asyncpg.Pool, settings: Settings) -> tuple[ProjectionRunner, EventStore]:
    async with pool.acquire() as conn:
        await event_store.migrate(conn)
        await projections.migrate(conn, RankingProjection())
        await conn.execute(SERVICE)
    store = EventStore(source_for("ranking", settings), BY_SERVICE["ranking"].name(settings))
    return ProjectionRunner(pool, RankingProjection(Emitter(store)), settings), store


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < within:
        if await check():
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {within}s waiting for {what}")
