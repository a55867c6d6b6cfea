"""Helpers for exchange tests: stand-in declarations and review outboxes (roster, pending items,
certified months) feeding an exchange service process, and a few HTTP helpers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
import httpx

from services.exchange.domain.member_code import member_code
from shared import store as event_store
from shared.auth import Role
from shared.envelope import source_for
from shared.events import Event
from shared.events.declarations import CommunityRegistered, DeclarationSubmitted, SubjectRegistered
from shared.events.review import MonthCertified, PointsAwarded, certification_digest
from shared.relay import Relay
from shared.settings import Settings
from shared.store import EventStore, Recorded
from shared.topics import DECLARATIONS, REVIEW
from tests.integration.review.support import create_database
from tests.support.services import RunningService, running_service, token
from tests.support.settings import fresh_settings

T0 = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)
COMMUNITY = "c-01"


@dataclass
class Feed:
    """Plays another service: its own database, outbox and relay onto its topic."""

    pool: asyncpg.Pool
    relay: Relay
    store: EventStore

    @classmethod
    async def start(cls, settings: Settings, service: str) -> Feed:
        dsn = await create_database(settings, service[:4])
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        async with pool.acquire() as conn:
            await event_store.migrate(conn)
        topic = {"declarations": DECLARATIONS, "review": REVIEW}[service]
        return cls(pool, Relay(pool, settings.model_copy(update={"database_url": dsn}), source_for(service)),
                   EventStore(source_for(service), topic.name(settings)))

    async def publish(self, streams: Sequence[tuple[str, str, Sequence[Event]]]) -> None:
        """(stream, key, events) appended in one transaction each, then relayed."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                for stream, key, events in streams:
                    version, _ = await self.store.stream_version(conn, stream)
                    await self.store.append(conn, stream, version, events, key=key, recorded=Recorded(
                        actor="feed", time=T0, correlation_id=uuid.uuid4()))
            while await self.relay.publish_batch(conn):
                pass

    async def close(self) -> None:
        if self.relay.producer is not None:
            await self.relay.producer.stop()
        await self.pool.close()


def subject(n: int, community: str = COMMUNITY, categories: tuple[str, ...] = ("resident",)) -> SubjectRegistered:
    return SubjectRegistered(subject_id=f"{community}-s{n:05d}", community_id=community, kind="person",
                             name=f"居民{n:05d}", categories=categories, registered_on=dt.date(2025, 1, 1))


def certified_month(community: str, month: str, points: dict[str, int]) -> list[Event]:
    awards = [PointsAwarded(item_id=f"{community}-{month}-{sid}", community_id=community, month=month, subject_id=sid,
                            category="resident", dimension="community_building", rule_code="CB01", points=p)
              for sid, p in sorted(points.items())]
    return [*awards, MonthCertified(community_id=community, month=month, count=len(awards),
                                    total=sum(a.points for a in awards), digest=certification_digest(awards),
                                    signed_by=("sec", "lg"), certified_at=T0)]


def pending_item(sid: str, points: int, community: str = COMMUNITY) -> DeclarationSubmitted:
    return DeclarationSubmitted(item_id=f"pend-{sid}", community_id=community, subject_id=sid, category="resident",
                                rule_code="CB01", rule_version=1, dimension="community_building", quantity=1,
                                points=points, channel="oral", occurred_on=dt.date(2026, 12, 1), entered_by="rec",
                                declared_by="rec")


@dataclass
class Supermarket:
    service: RunningService
    settings: Settings
    declarations: Feed
    review: Feed

    def clerk(self, community: str = COMMUNITY, sub: str = "clerk-1") -> httpx.Client:
        return self.service.client(token(sub, Role.clerk, community))

    async def roster(self, subjects: Sequence[SubjectRegistered], *, pending: dict[str, int] | None = None,
                     community: str = COMMUNITY, name: str = "安置社区") -> None:
        await self.declarations.publish(
            [(f"community-{community}", community, [CommunityRegistered(community_id=community, name=name)])]
            + [(f"subject-{s.subject_id}", s.subject_id, [s]) for s in subjects]
            + [(f"declaration-pend-{sid}", sid, [pending_item(sid, p, community)])
               for sid, p in (pending or {}).items()])

    async def certify(self, community: str, month: str, points: dict[str, int]) -> None:
        await self.review.publish([(f"community-{community}", community, certified_month(community, month, points))])

    async def balances(self) -> dict[str, tuple[int, int]]:
        """subject -> (spendable, pending), from the service's own database."""
        conn = await asyncpg.connect(self.settings.database_url)
        try:
            rows = await conn.fetch("""select b.subject_id, b.awarded + b.corrected - b.redeemed + b.returned as s
                                       from balances b""")
            return {r["subject_id"]: int(r["s"]) for r in rows}  # type: ignore[misc]
        finally:
            await conn.close()

    async def wait_for_balance(self, sid: str, spendable: int, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if (await self.balances()).get(sid) == spendable:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{sid} never reached {spendable} (has {(await self.balances()).get(sid)})")


def code(sid: str) -> str:
    return member_code(sid)


@contextlib.asynccontextmanager
async def supermarket(stack: tuple[str, str], partitions: int = 4) -> AsyncIterator[Supermarket]:
    settings = await fresh_settings(*stack, topic_partitions=partitions)
    declarations, review = await Feed.start(settings, "declarations"), await Feed.start(settings, "review")
    try:
        with running_service("exchange", settings) as svc:
            yield Supermarket(svc, settings, declarations, review)
    finally:
        await declarations.close()
        await review.close()


def list_item(client: httpx.Client, item_id: str, price: int, stock: int, *, community: str = COMMUNITY,
              name: str = "大米", limits: dict[str, object] | None = None) -> None:
    r = client.post("/catalogue/items", headers={"idempotency-key": f"list-{item_id}-{uuid.uuid4()}"},
                    json={"item_id": item_id, "community_id": community, "name": name, "unit": "袋", "price": price,
                          "limits": limits or {}})
    assert r.status_code == 201, r.text
    if stock:
        r = client.post("/donations", headers={"idempotency-key": f"don-{item_id}-{uuid.uuid4()}"},
                        json={"item_id": item_id, "donor": "贵州爱心企业", "quantity": stock,
                              "received_on": dt.date.today().isoformat()})
        assert r.status_code == 201, r.text
