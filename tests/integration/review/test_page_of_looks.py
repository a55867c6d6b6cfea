"""Pages of looks on the real log: two reviewers deciding overlapping pages at once (and single looks racing
them) decide each item exactly once, in the store and on the review topic; every other look is refused
with its reason; the snapshot is the fold of the stream."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter
from dataclasses import replace

import asyncpg
import pytest

from services.review import handlers, state
from services.review.domain import commands as c
from services.review.domain.evolve import ReviewState, fold
from services.review.items import ItemsProjection
from services.review.settings import ReviewSettings
from shared.envelope import source_for
from shared.errors import Rejected
from shared.events.review import ItemDecision, ReviewEvent
from shared.projection import ProjectionRunner
from shared.relay import Relay
from shared.settings import Settings
from shared.store import EventStore, Recorded
from tests.integration.review.support import DeclarationsFeed, declaration
from tests.integration.review.test_certification_on_the_log import read_all

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
ALICE, BOB, CAROL = c.Actor("rec-2", "c-01"), c.Actor("rec-3", "c-01"), c.Actor("rec-4", "c-01")


def rules(community_id: str) -> c.Rules:
    return ReviewSettings().rules(community_id, "Asia/Shanghai")


def page(actor: c.Actor, ids: list[str]) -> c.DecideItems:
    return c.DecideItems(tuple(c.DecideItem(i, "rejected", "与事实不符", actor) if i.endswith("7")
                               else c.DecideItem(i, "verified", "", actor) for i in ids))


async def decide_page(pool: asyncpg.Pool, store: EventStore, command: c.DecideItems) -> handlers.PageOutcome:
    async with pool.acquire() as conn, conn.transaction():
        return await handlers.handle_page(conn, store, command, rules, Recorded(
            actor=command.looks[0].actor.sub, time=NOW, correlation_id=uuid.uuid4()), attempts=5)


async def decide_one(pool: asyncpg.Pool, store: EventStore, item_id: str) -> str:
    try:
        async with pool.acquire() as conn, conn.transaction():
            await handlers.handle(conn, store, c.DecideItem(item_id, "verified", "", CAROL), rules, Recorded(
                actor=CAROL.sub, time=NOW, correlation_id=uuid.uuid4()), attempts=10)
        return "accepted"
    except Rejected as refused:
        return refused.code


async def test_given_overlapping_pages_decided_at_once_then_each_item_is_decided_exactly_once(
    pool: asyncpg.Pool, settings: Settings, review_store: EventStore, feed: DeclarationsFeed
) -> None:
    # given: 300 items of c-01 recorded by rec-1, 5 recorded by Alice herself, 3 of another community
    await feed.publish([declaration(i) for i in range(300)] + [declaration(i, by="rec-2") for i in range(300, 305)]
                       + [declaration(i, community="c-02") for i in range(3)])
    await ProjectionRunner(pool, ItemsProjection(), settings).catch_up()
    ids = [f"c-01-i{i:06d}" for i in range(300)]
    alice_page = page(ALICE, ids[:200] + [f"c-01-i{i:06d}" for i in range(300, 305)])
    bob_page = page(BOB, ids[100:] + [f"c-02-i{i:06d}" for i in range(3)] + ["c-01-i999999"])
    # when: Alice and Bob decide overlapping pages at once, while Carol looks at some of the overlap one by one
    alice, bob, carol = await asyncio.gather(
        decide_page(pool, review_store, alice_page), decide_page(pool, review_store, bob_page),
        asyncio.gather(*(decide_one(pool, review_store, i) for i in ids[150:160])))
    # then: every item of the 300 was accepted exactly once, by one of the three
    accepted = Counter([o.look.item_id for o in (*alice.looks, *bob.looks) if o.refused is None]
                       + [i for i, got in zip(ids[150:160], carol, strict=True) if got == "accepted"])
    assert set(accepted) == set(ids) and set(accepted.values()) == {1}
    # and every other look was refused with its reason: the overlap as decided, Alice's own, c-02's, the unknown
    # (an item of the overlap Carol took first is refused to both of them)
    refused = Counter(o.refused.code for o in (*alice.looks, *bob.looks) if o.refused is not None)
    assert refused == {"already_decided": 100 + carol.count("accepted"), "own_item": 5,
                       "forbidden_community": 3, "item_not_found": 1}
    assert all(o.refused.reason for o in (*alice.looks, *bob.looks) if o.refused is not None)
    assert set(carol) <= {"accepted", "already_decided"}
    assert [o.look for o in alice.looks] == list(alice_page.looks)  # outcomes in the order asked
    # and the events are in the store once per item, each accepted look answered with its own
    async with pool.acquire() as conn:
        stream = await review_store.load(conn, handlers.stream_of("c-01"))
    decisions = [e.event.item_id for e in stream if isinstance(e.event, ItemDecision)]
    assert Counter(decisions) == Counter({i: 1 for i in ids})
    for outcome in (alice, bob):
        for o in outcome.looks:
            assert [e.event for e in outcome.envelopes.get(o.look.item_id, [])] == list(o.events)
    # and on the review topic once per item, in the community's one stream
    relay = Relay(pool, settings, source_for("review"))
    try:
        async with pool.acquire() as conn:
            while await relay.publish_batch(conn):
                pass
    finally:
        if relay.producer is not None:
            await relay.producer.stop()
    on_topic = [(e.key, e.event.item_id) for e in await read_all(settings) if isinstance(e.event, ItemDecision)]
    assert Counter(item_id for _, item_id in on_topic) == Counter({i: 1 for i in ids})
    assert {key for key, _ in on_topic} == {"c-01"}
    # and the snapshot kept with the events is the fold of the stream
    async with pool.acquire() as conn:
        snapshot = await state.full(conn, "c-01")
    fresh = ReviewState("c-01", items={k: replace(i, status="submitted") for k, i in snapshot.items.items()})
    replayed = fold(fresh, [e.event for e in stream if isinstance(e.event, ReviewEvent)])
    assert replayed.items == snapshot.items
    carols = {i for i, got in zip(ids[150:160], carol, strict=True) if got == "accepted"}  # she verifies all
    wanted = Counter("rejected" if i.endswith("7") and i not in carols else "verified" for i in ids)
    assert Counter(i.status for i in snapshot.items.values()) == wanted + Counter({"submitted": 5})


async def test_given_a_single_look_lands_while_a_page_is_decided_then_the_page_is_decided_again_on_it(
    pool: asyncpg.Pool, settings: Settings, review_store: EventStore, feed: DeclarationsFeed
) -> None:
    await feed.publish([declaration(i) for i in range(20)])
    await ProjectionRunner(pool, ItemsProjection(), settings).catch_up()
    ids = [f"c-01-i{i:06d}" for i in range(20)]
    single: list[str] = []

    async def carol_looks_first(attempt: int) -> None:  # between the page's decision and its append
        if attempt == 1:
            single.append(await decide_one(pool, review_store, ids[5]))

    # when: Alice's page is decided, and Carol's single look on one of its items commits before the append
    async with pool.acquire() as conn, conn.transaction():
        outcome = await handlers.handle_page(conn, review_store, page(ALICE, ids), rules, Recorded(
            actor=ALICE.sub, time=NOW, correlation_id=uuid.uuid4()), decided=carol_looks_first)
    # then: the page was decided again on the new state: that item refused to Alice, the rest hers
    assert single == ["accepted"] and outcome.attempts == 2
    assert [o.refused.code for o in outcome.looks if o.refused] == ["already_decided"]
    assert outcome.looks[5].refused is not None and sorted(outcome.envelopes) == ids[:5] + ids[6:]
    async with pool.acquire() as conn:
        stream = await review_store.load(conn, handlers.stream_of("c-01"))
    decisions = [e.event.item_id for e in stream if isinstance(e.event, ItemDecision)]
    assert Counter(decisions) == Counter({i: 1 for i in ids})
