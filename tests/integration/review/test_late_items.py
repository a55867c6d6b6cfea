"""No item in limbo: items that reach review while their month is being certified all end certified,
rejected with a reason, or carried into the next month by an explicit event; the ledger shows which."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg
import pytest

from services.declarations.ledger import LedgerProjection
from services.review import handlers, late_items, state
from services.review.domain import commands as c
from services.review.domain.certification import awards_of
from services.review.domain.model import Signer
from services.review.items import ItemsProjection
from services.review.settings import ReviewSettings
from shared import projection as projections
from shared.envelope import source_for
from shared.errors import Rejected
from shared.events.review import ItemCarriedOver, MonthCertified, PointsAwarded, certification_digest
from shared.projection import ProjectionRunner
from shared.relay import Relay
from shared.settings import Settings
from shared.store import EventStore, Recorded
from tests.integration.review.support import DeclarationsFeed, declaration

pytestmark = pytest.mark.integration

TZ = "Asia/Shanghai"
LAST_DAY = dt.datetime(2026, 11, 30, 1, 0, tzinfo=dt.UTC)
SIGNERS = (Signer("sec", "secretary", "c-01"), Signer("lg-1", "leading_group", "c-01"))
RECORDER = c.Actor("rec-2", "c-01")
FIRST = 40


def rules(community_id: str) -> c.Rules:
    return ReviewSettings().rules(community_id, TZ)


async def run(pool: asyncpg.Pool, store: EventStore, command: c.Command, actor: str) -> handlers.Outcome:
    async with pool.acquire() as conn, conn.transaction():
        return await handlers.handle(conn, store, command, rules,
                                     Recorded(actor=actor, time=LAST_DAY, correlation_id=uuid.uuid4()))


async def review_what_has_arrived(pool: asyncpg.Pool, store: EventStore) -> None:
    """The recorder looks at every waiting item of the month (every 7th is rejected with a reason)."""
    async with pool.acquire() as conn:
        month = await state.load(conn, "c-01", month_items=["2026-11"])
    for it in month.items_of("2026-11"):
        if it.status == "submitted":
            n = int(it.item_id[-6:])
            command = (c.DecideItem(it.item_id, "rejected", "重复申报", RECORDER) if n % 7 == 0
                       else c.DecideItem(it.item_id, "verified", "", RECORDER))
            try:
                await run(pool, store, command, "rec-2")
            except Rejected as refused:  # certified meanwhile: the item was carried (its look lands next month)
                assert refused.code in ("already_decided",), refused.code


async def leading_group_certifies(pool: asyncpg.Pool, store: EventStore) -> MonthCertified:
    """Members sign what they see; if items arrived meanwhile, the recorder reviews them and they sign again."""
    while True:
        await review_what_has_arrived(pool, store)
        async with pool.acquire() as conn:
            month = await state.load(conn, "c-01", month_items=["2026-11"])
        digest = certification_digest(awards_of(month.items_of("2026-11")))
        try:
            for signer in SIGNERS:
                outcome = await run(pool, store, c.SignMonth("c-01", "2026-11", digest, signer, LAST_DAY),
                                    signer.sub)
        except Rejected as refused:
            assert refused.code in ("items_waiting", "digest_changed", "already_signed"), refused.code
            continue
        closing = outcome.envelopes[-1].event
        if isinstance(closing, MonthCertified):
            return closing


async def test_items_submitted_while_their_month_is_certified_all_end_certified_rejected_or_carried(
    pool: asyncpg.Pool, settings: Settings, review_store: EventStore, feed: DeclarationsFeed
) -> None:
    items = ProjectionRunner(pool, ItemsProjection(), settings)
    await feed.publish([declaration(i) for i in range(FIRST)])
    await items.catch_up()

    certified = asyncio.Event()
    sent = FIRST

    async def declarations_keep_accepting() -> None:
        """Declarations accepts items (201) until it learns the month is certified, and a few while that
        news is on its way; review sees each batch a moment later."""
        nonlocal sent
        after_news = 2
        while after_news > 0:
            await feed.publish([declaration(i) for i in range(sent, sent + 5)])
            sent += 5
            await items.catch_up()
            after_news -= certified.is_set()

    arriving = asyncio.create_task(declarations_keep_accepting())
    closing = await leading_group_certifies(pool, review_store)
    certified.set()
    await arriving
    await items.catch_up()
    carried_now = await late_items.carry_once(pool, review_store, TZ, now=LAST_DAY)

    async with pool.acquire() as conn:
        stream = [e.event for e in await review_store.load(conn, "community-c-01")]
        after = await state.load(conn, "c-01", item_ids=[f"c-01-i{i:06d}" for i in range(sent)])
    awarded = {e.item_id for e in stream if isinstance(e, PointsAwarded)}
    carried = {e.item_id: e for e in stream if isinstance(e, ItemCarriedOver)}
    rejected = {k for k, it in after.items.items() if it.status == "rejected"}
    outcome = {}
    for item_id, it in after.items.items():
        ends = [name for name, ids in (("certified", awarded), ("rejected", rejected), ("carried", carried))
                if item_id in ids]
        assert len(ends) == 1, (item_id, ends)  # each item ends in exactly one of the three outcomes
        outcome[item_id] = ends[0]
        assert not (it.month == "2026-11" and it.status == "submitted")  # nothing waits in a closed month
    assert len(outcome) == sent and closing.count == len(awarded)
    assert all(e.to_month == "2026-12" and e.reason for e in carried.values())
    late = sum(1 for v in outcome.values() if v == "carried")
    print(f"certified {len(awarded)}, rejected {len(rejected)}, carried {late} (by the policy now: {carried_now})")
    assert late > 0, "no item arrived after the certification: the race was not exercised"

    # the ledger (declarations' projection of both topics) shows each item's outcome
    relay = Relay(pool, settings, source_for("review"))
    async with pool.acquire() as conn:
        while await relay.publish_batch(conn):
            pass
    await relay.close()
    async with pool.acquire() as conn:
        await projections.migrate(conn, LedgerProjection())
    await ProjectionRunner(pool, LedgerProjection(), settings).catch_up()
    ledger = {r["item_id"]: (r["status"], r["note"]) for r in await pool.fetch("select * from ledger_review")}
    expected = {"certified": "certified", "rejected": "rejected", "carried": "carried"}
    assert {k: ledger.get(k, ("submitted", ""))[0] for k in outcome} == {k: expected[v] for k, v in outcome.items()}
    assert all("2026-12" in ledger[k][1] for k, v in outcome.items() if v == "carried")
