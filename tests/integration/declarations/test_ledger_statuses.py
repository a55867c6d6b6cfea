"""The ledger's review statuses: a batch of decisions and awards gives each item the status of its
last event, as one event at a time would."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import pytest

from services.declarations.ledger import LedgerProjection
from shared.envelope import GENESIS_HASH, Envelope, source_for
from shared.events import Event
from shared.events.review import ItemRejected, ItemReturned, ItemVerified, PointsAwarded
from shared.projection import migrate

pytestmark = pytest.mark.integration
C, M = "c-01", "2026-11"


def envelope(event: Event) -> Envelope:
    return Envelope(uuid.uuid4(), source_for("review"), event.type_name(), f"{C}:{M}", 1,
                    dt.datetime(2026, 11, 30, tzinfo=dt.UTC), "rec-1", str(uuid.uuid4()), None, C, GENESIS_HASH, "h",
                    event, 1)


async def test_given_decisions_and_awards_in_one_batch_then_each_item_shows_its_last_status(pool: asyncpg.Pool) -> None:
    # given an item returned, then verified, then awarded; another returned; a third rejected
    events: list[Event] = [ItemReturned(item_id="i-1", community_id=C, month=M, to_fix="缺少照片"),
                           ItemReturned(item_id="i-2", community_id=C, month=M, to_fix="数量不对"),
                           ItemVerified(item_id="i-1", community_id=C, month=M),
                           ItemRejected(item_id="i-3", community_id=C, month=M, reason="不属实"),
                           PointsAwarded(item_id="i-1", community_id=C, month=M, subject_id="p-1",
                                         category="resident", dimension="community_building", rule_code="CB01",
                                         points=3)]
    projection = LedgerProjection()

    async def statuses(calls: list[list[Event]]) -> list[tuple[str, str, str]]:
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            try:
                await migrate(conn, projection)
                for call in calls:
                    await projection.apply(conn, [envelope(ev) for ev in call])
                return [tuple(r) for r in await conn.fetch("select * from ledger_review order by item_id")]
            finally:
                await tx.rollback()

    # when applied in one batch, then as one event at a time, with the reasons in Chinese
    together = await statuses([events])
    assert together == await statuses([[ev] for ev in events])
    assert together == [("i-1", "certified", ""), ("i-2", "returned", "数量不对"), ("i-3", "rejected", "不属实")]
