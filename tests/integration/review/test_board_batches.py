"""The review board applies a batch of mixed decisions in log order: a carried-over item among verified ones."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import pytest

from services.review.board import BoardProjection
from shared.envelope import Envelope
from shared.events import Event
from shared.events.review import ItemCarriedOver, ItemVerified

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)


def envelope(n: int, event: Event) -> Envelope:
    return Envelope(id=uuid.uuid4(), source="review", type=type(event).__name__, subject="community-c-01",
                    sequence=n, time=T0 + dt.timedelta(seconds=n), actor="rec-2", correlation_id=str(uuid.uuid4()),
                    causation_id=None, key="c-01", prev_hash="", hash="", event=event)


async def test_given_a_carry_over_between_decisions_in_one_batch_then_each_item_ends_as_the_log_says(
    pool: asyncpg.Pool,
) -> None:
    # given: one batch — a verified item, a late item carried into December and then verified there, another verified
    batch = [
        envelope(1, ItemVerified(item_id="a", community_id="c-01", month="2026-11")),
        envelope(2, ItemCarriedOver(item_id="b", community_id="c-01", month="2026-11", to_month="2026-12",
                                    reason="十一月已认定，转入十二月审核")),
        envelope(3, ItemCarriedOver(item_id="c", community_id="c-01", month="2026-11", to_month="2026-12",
                                    reason="十一月已认定，转入十二月审核")),
        envelope(4, ItemVerified(item_id="b", community_id="c-01", month="2026-12")),
        envelope(5, ItemVerified(item_id="d", community_id="c-01", month="2026-11")),
    ]
    board = BoardProjection()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(board.schema)
        # when: the board applies it in one call
        await board.apply(conn, batch)
        rows = {r["item_id"]: (r["status"], r["month"], r["carried_from"]) for r in await conn.fetch(
            "select item_id, status, month, carried_from from board_status where item_id = any($1::text[])",
            ["a", "b", "c", "d"])}
    # then: b was carried and then verified in December, c waits in December, a and d are verified in November
    assert rows == {"a": ("verified", "2026-11", None), "b": ("verified", "2026-12", "2026-11"),
                    "c": ("submitted", "2026-12", "2026-11"), "d": ("verified", "2026-11", None)}
