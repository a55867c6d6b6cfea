"""No item in limbo: items that reach review after their month was certified are carried forward.

Declarations may accept an item (201) for a month just before it learns the month is certified;
review then sees it after the certification. This policy runs the ``CarryLateItems`` command
(the same path as any command) for every community with such an item, so each ends in the next
open month with an explicit ``ItemCarriedOver`` event, which the ledger and the declarant see.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid

import asyncpg

from services.review import clock, handlers
from services.review.domain.commands import CarryLateItems
from services.review.settings import review_settings
from shared.store import EventStore, Recorded

ACTOR = "review-policy:late-items"

_COMMUNITIES = """select distinct w.community_id from review_waiting w join items i using (item_id)
                  left join review_status s using (item_id)
                  join review_months m on m.community_id = i.community_id and m.month = coalesce(s.month, i.month)
                  where m.certified_at is not null"""


async def carry_once(pool: asyncpg.Pool, store: EventStore, tz: str, now: dt.datetime | None = None) -> int:
    """Carry every late item of every community; returns how many were carried."""
    settings = review_settings()
    async with pool.acquire() as conn:
        # items decided since they arrived leave the queue (a rebuild of the items projection refills it)
        await conn.execute("delete from review_waiting w using review_status s where s.item_id = w.item_id")
        communities = [r["community_id"] for r in await conn.fetch(_COMMUNITIES)]
        carried = 0
        for community_id in communities:
            when = now or await clock.read(conn)
            async with conn.transaction():
                outcome = await handlers.handle(
                    conn, store, CarryLateItems(community_id), lambda cid: settings.rules(cid, tz),
                    Recorded(actor=ACTOR, time=when, correlation_id=uuid.uuid4()),
                    attempts=settings.command_attempts)
            carried += len(outcome.envelopes)
        return carried


async def run(pool: asyncpg.Pool, store: EventStore, tz: str, stop: asyncio.Event) -> None:
    interval = review_settings().late_item_interval_s
    while not stop.is_set():
        await carry_once(pool, store, tz)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
