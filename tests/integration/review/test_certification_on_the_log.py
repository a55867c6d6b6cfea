"""Review on the real log: a certification seen whole or not at all, rebuilds, corrections downstream."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from services.review import handlers, state, views
from services.review.board import DIGESTS, BoardProjection
from services.review.domain.model import Signer
from services.review.items import ItemsProjection
from services.review.settings import ReviewSettings
from shared import projection as projections
from shared import store as event_store
from shared.envelope import Envelope, decode, source_for
from shared.events.review import CertifiedMonths, MonthCertified, ObjectionUpheld, PointsAwarded, PointsCorrected
from shared.kafka import consumer_config
from shared.projection import ProjectionRunner, partitions_of, table_digest
from shared.relay import Relay
from shared.settings import Settings
from shared.store import EventStore, Recorded
from shared.topics import REVIEW
from tests.integration.review.support import DeclarationsFeed, declaration, deduction, eventually

pytestmark = pytest.mark.integration

TZ = "Asia/Shanghai"
LAST_DAY = dt.datetime(2026, 11, 30, 1, 0, tzinfo=dt.UTC)
SIGNERS = (Signer("sec", "secretary", "c-01"), Signer("lg-1", "leading_group", "c-01"))


@pytest.fixture
async def review_store(pool: asyncpg.Pool, settings: Settings) -> EventStore:
    async with pool.acquire() as conn:
        await event_store.migrate(conn)
        for p in (ItemsProjection(), BoardProjection()):
            await projections.migrate(conn, p)
        await conn.execute(state.SCHEMA)
    return EventStore(source_for("review"), REVIEW.name(settings))


@pytest.fixture
async def feed(settings: Settings) -> AsyncIterator[DeclarationsFeed]:
    f = await DeclarationsFeed.start(settings)
    try:
        yield f
    finally:
        await f.close()


def rec(actor: str, time: dt.datetime = LAST_DAY) -> Recorded:
    return Recorded(actor=actor, time=time, correlation_id=uuid.uuid4())


async def review_consumer(settings: Settings) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    tps = await partitions_of(consumer, [REVIEW.name(settings)])
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return consumer


async def read_all(settings: Settings) -> list[Envelope]:
    consumer = await review_consumer(settings)
    try:
        end = await consumer.end_offsets(list(consumer.assignment()))
        out: list[Envelope] = []
        while [tp for tp, off in end.items() if await consumer.position(tp) < off]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out += [decode(r.headers, r.key, r.value) for r in records]
        return out
    finally:
        await consumer.stop()


async def test_a_consumer_reading_while_a_month_is_published_sees_all_of_it_or_none(
    pool: asyncpg.Pool, settings: Settings, review_store: EventStore, feed: DeclarationsFeed
) -> None:
    n = 3000
    await feed.publish([declaration(i) for i in range(n)])
    await ProjectionRunner(pool, ItemsProjection(), settings).catch_up()
    await pool.execute("insert into review_status select item_id, community_id, month, 'verified' from items")
    async with pool.acquire() as conn, conn.transaction():
        envs = await handlers.certify(conn, review_store, community_id="c-01", month="2026-11", signers=SIGNERS,
                                      now=LAST_DAY, settings=ReviewSettings(), tz=TZ, recorded=rec("sec"))
    closing = envs[-1].event
    assert isinstance(closing, MonthCertified) and closing.count == n

    # when: the relay publishes in small batches while a downstream consumer and the board read concurrently
    stop = asyncio.Event()
    relay = Relay(pool, settings.model_copy(update={"relay_batch_size": 200}), source_for("review"))
    board = ProjectionRunner(pool, BoardProjection(), settings)
    tasks = [asyncio.create_task(relay.run(stop)), asyncio.create_task(board.run(stop))]
    consumer = await review_consumer(settings)
    months, read, prefixes_seen, board_samples = CertifiedMonths(), 0, 0, []
    try:
        while read < len(envs):
            for records in (await consumer.getmany(timeout_ms=200, max_records=150)).values():
                for r in records:
                    months.apply(decode(r.headers, r.key, r.value).event)
                    read += 1
            # then: a prefix of the month is never counted; when counted, count and digest match
            if months.certified:
                got, awards = months.certified[("c-01", "2026-11")]
                assert (got.count, got.digest, len(awards)) == (n, closing.digest, n)
            elif months.pending:
                prefixes_seen += 1
            lines = await views.notice_lines(pool, "c-01", "2026-11")
            board_samples.append(sum(line["points"] for line in lines))
        assert months.certified and not months.mismatched
        assert prefixes_seen > 0, "the consumer never saw a part of the month: the test proved nothing"
        await eventually(lambda: pool.fetchval("select coalesce(bool_or(complete), false) from board_months"), 30,
                         "the board to show the month")
        assert set(board_samples) <= {0, closing.total}  # the board too: nothing, or the whole month
        assert await pool.fetchval("select complete from board_months") is True
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await consumer.stop()


async def a_month_through_its_whole_life(pool: asyncpg.Pool, settings: Settings, store: EventStore,
                                         feed: DeclarationsFeed) -> dict[str, Any]:
    """Verify, return, reject, overrule, certify, post, object, uphold, dismiss, correct, finalise."""
    await feed.publish([*(declaration(i) for i in range(8)), deduction(1),
                        declaration(99, day=dt.date(2026, 12, 3))])
    items = ProjectionRunner(pool, ItemsProjection(), settings)
    await items.catch_up()
    ids = [f"c-01-i{i:06d}" for i in range(8)]
    out: dict[str, Any] = {}

    async def tx(fn: Any, **kw: Any) -> list[Envelope]:
        async with pool.acquire() as conn, conn.transaction():
            return await fn(conn, store, **kw)  # type: ignore[no-any-return]

    for item_id in [*ids[:6], "c-01-d000001"]:
        await tx(handlers.decide_item, item_id=item_id, actor_community="c-01", decision="verified", note="",
                 overrule=False, recorded=rec("rec-2"))
    await tx(handlers.decide_item, item_id=ids[6], actor_community="c-01", decision="returned", note="补充照片",
             overrule=False, recorded=rec("rec-2"))
    await tx(handlers.decide_item, item_id=ids[7], actor_community="c-01", decision="rejected", note="重复",
             overrule=False, recorded=rec("rec-2"))
    await tx(handlers.decide_item, item_id=ids[7], actor_community="c-01", decision="verified", note="不是重复",
             overrule=True, recorded=rec("sup-1"))
    await tx(handlers.decide_item, item_id=ids[6], actor_community="c-01", decision="rejected", note="未补充",
             overrule=False, recorded=rec("rec-2"))
    out["certified"] = (await tx(handlers.certify, community_id="c-01", month="2026-11", signers=SIGNERS,
                                 now=LAST_DAY, settings=ReviewSettings(), tz=TZ, recorded=rec("sec")))[-1].event
    posted = LAST_DAY + dt.timedelta(hours=2)
    await tx(handlers.post_notice, community_id="c-01", month="2026-11",
             channels=["wechat_official_account", "party_wechat_group", "bulletin_board"], now=posted,
             settings=ReviewSettings(), recorded=rec("sec", posted))
    objections = []
    for resident, item_id in (("r-1", ids[0]), ("r-2", ids[1])):
        async with pool.acquire() as conn, conn.transaction():
            oid, _ = await handlers.object_to(conn, store, community_id="c-01", month="2026-11", item_id=item_id,
                                              resident=resident, resident_community="c-01", reason="没见他参加",
                                              now=posted, recorded=rec(resident, posted))
        objections.append(oid)
    later = posted + dt.timedelta(days=2)  # in December (Shanghai): corrections land in 2026-12
    out["upheld"] = await tx(handlers.resolve, objection_id=objections[0], actor_community="c-01", uphold=True,
                             delta=-2, reason="核实未参加", now=later, tz=TZ, recorded=rec("sec", later))
    await tx(handlers.resolve, objection_id=objections[1], actor_community="c-01", uphold=False, delta=0,
             reason="有签到记录", now=later, tz=TZ, recorded=rec("sec", later))
    await tx(handlers.correct, community_id="c-01", item_id=ids[6], delta=2, reason="已补充照片，迟到更正", now=later,
             tz=TZ, recorded=rec("sup-1", later))
    final = posted + dt.timedelta(days=7, minutes=1)
    await tx(handlers.finalise, community_id="c-01", month="2026-11", now=final, recorded=rec("sec", final))
    relay = Relay(pool, settings, source_for("review"))
    async with pool.acquire() as conn:
        while await relay.publish_batch(conn):
            pass
    await relay.close()
    return out


async def test_rebuilding_every_review_projection_from_offset_0_gives_identical_digests(
    pool: asyncpg.Pool, settings: Settings, review_store: EventStore, feed: DeclarationsFeed
) -> None:
    await a_month_through_its_whole_life(pool, settings, review_store, feed)
    runners = [ProjectionRunner(pool, p, settings) for p in (ItemsProjection(), BoardProjection())]
    for r in runners:
        await r.catch_up()
    tables = DIGESTS | {"items": "item_id"}
    before = {t: await table_digest(pool, t, order) for t, order in tables.items()}  # type: ignore[arg-type]
    assert await pool.fetchval("select count(*) from board_awards") == 8
    assert await pool.fetchval("select finalised_at is not null and complete from board_months")
    after: dict[str, str] = {}
    for r in runners:  # each rebuilt into its scratch schema, beside the live tables
        built = await projections.rebuild(pool, r.projection, settings)
        after |= {t: await table_digest(pool, f"{built.schema}.{t}", order)  # type: ignore[arg-type]
                  for t, order in tables.items() if t in r.projection.tables}
    assert after == before


async def test_an_upheld_objection_reaches_a_downstream_consumer_as_a_correction(
    pool: asyncpg.Pool, settings: Settings, review_store: EventStore, feed: DeclarationsFeed
) -> None:
    life = await a_month_through_its_whole_life(pool, settings, review_store, feed)
    upheld, corrected = (e.event for e in life["upheld"])
    assert isinstance(upheld, ObjectionUpheld) and isinstance(corrected, PointsCorrected)
    log = await read_all(settings)
    assert {e.key for e in log} == {"c-01"} and [e.sequence for e in log] == list(range(1, len(log) + 1))
    got = [e.event for e in log if isinstance(e.event, PointsCorrected)]
    assert [(c.item_id, c.delta, c.month, c.item_month, c.objection_id) for c in got] == [
        ("c-01-i000000", -2, "2026-12", "2026-11", upheld.objection_id),
        ("c-01-i000006", 2, "2026-12", "2026-11", None),
    ]
    awards = [e.event for e in log if isinstance(e.event, PointsAwarded)]
    assert "c-01-i000000" in {a.item_id for a in awards}  # the original stays as it was: corrected, not edited
    assert sum(a.points for a in awards) == life["certified"].total == 7 * 2 - 3


async def test_two_leading_groups_certifying_at_once_make_one_certification(
    pool: asyncpg.Pool, settings: Settings, review_store: EventStore, feed: DeclarationsFeed
) -> None:
    await feed.publish([declaration(i) for i in range(50)])
    await ProjectionRunner(pool, ItemsProjection(), settings).catch_up()
    await pool.execute("insert into review_status select item_id, community_id, month, 'verified' from items")

    async def certify_once() -> int:
        async with pool.acquire() as conn, conn.transaction():
            envs = await handlers.certify(conn, review_store, community_id="c-01", month="2026-11", signers=SIGNERS,
                                          now=LAST_DAY, settings=ReviewSettings(), tz=TZ, recorded=rec("sec"))
            await asyncio.sleep(0.2)  # hold the transaction open so the two overlap
            return len(envs)

    results = await asyncio.gather(certify_once(), certify_once(), return_exceptions=True)
    outcomes = sorted(str(r) if isinstance(r, int) else getattr(r, "code", repr(r)) for r in results)
    assert outcomes == ["51", "already_certified"]
    assert await pool.fetchval("select count(*) from events where type like '%MonthCertified%'") == 1
