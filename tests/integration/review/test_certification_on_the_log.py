"""Review on the real log: a certification seen whole or not at all, rebuilds, corrections downstream."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from services.review import handlers, state, views
from services.review.board import DIGESTS, BoardProjection
from services.review.domain import commands as c
from services.review.domain.certification import awards_of
from services.review.domain.evolve import ReviewState, fold
from services.review.domain.model import Signer
from services.review.items import ItemsProjection
from services.review.settings import ReviewSettings
from shared import projection as projections
from shared.envelope import Envelope, decode, source_for
from shared.errors import Rejected
from shared.events.review import (
    CertifiedMonths,
    MonthCertified,
    ObjectionUpheld,
    PointsAwarded,
    PointsCorrected,
    ReviewEvent,
    certification_digest,
)
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


def rec(actor: str, time: dt.datetime = LAST_DAY) -> Recorded:
    return Recorded(actor=actor, time=time, correlation_id=uuid.uuid4())


def rules(community_id: str) -> c.Rules:
    return ReviewSettings().rules(community_id, TZ)


async def run(pool: asyncpg.Pool, store: EventStore, command: c.Command, actor: str,
              time: dt.datetime = LAST_DAY) -> list[Envelope]:
    """One command through the one path, in its own transaction."""
    async with pool.acquire() as conn, conn.transaction():
        return (await handlers.handle(conn, store, command, rules, rec(actor, time))).envelopes


async def digest_now(pool: asyncpg.Pool, month: str = "2026-11") -> str:
    async with pool.acquire() as conn:
        return certification_digest(awards_of((await state.load(conn, "c-01", month_items=[month])).items_of(month)))


async def certify(pool: asyncpg.Pool, store: EventStore, month: str = "2026-11") -> list[Envelope]:
    """The secretary signs, then a member: the second signature certifies the month."""
    digest = await digest_now(pool, month)
    await run(pool, store, c.SignMonth("c-01", month, digest, SIGNERS[0], LAST_DAY), "sec")
    return await run(pool, store, c.SignMonth("c-01", month, digest, SIGNERS[1], LAST_DAY), "lg-1")


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
    envs = await certify(pool, review_store)
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
        while read < len(envs) + 1:  # the secretary's signature, then the member's append
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

    recorder, supervisor, sec = c.Actor("rec-2", "c-01"), c.Actor("sup-1", "c-01"), c.Actor("sec", "c-01")
    for item_id in [*ids[:6], "c-01-d000001"]:
        await run(pool, store, c.DecideItem(item_id, "verified", "", recorder), "rec-2")
    await run(pool, store, c.DecideItem(ids[6], "returned", "补充照片", recorder), "rec-2")
    await run(pool, store, c.DecideItem(ids[7], "rejected", "重复", recorder), "rec-2")
    await run(pool, store, c.OverruleItem(ids[7], "verified", "不是重复", supervisor), "sup-1")
    await run(pool, store, c.DecideItem(ids[6], "rejected", "未补充", recorder), "rec-2")
    out["certified"] = (await certify(pool, store))[-1].event
    posted = LAST_DAY + dt.timedelta(hours=2)
    await run(pool, store, c.PostNotice("c-01", "2026-11", ("wechat_official_account", "party_wechat_group",
                                                             "bulletin_board"), posted), "sec", posted)
    objections = []
    for resident, item_id in (("r-1", ids[0]), ("r-2", ids[1])):
        oid = str(uuid.uuid4())
        await run(pool, store, c.RaiseObjection("c-01", "2026-11", item_id, resident, "c-01", "", "没见他参加", oid,
                                                posted), resident, posted)
        objections.append(oid)
    later = posted + dt.timedelta(days=2)  # in December (Shanghai): corrections land in 2026-12
    out["upheld"] = await run(pool, store, c.ResolveObjection(objections[0], True, -2, "核实未参加", str(uuid.uuid4()),
                                                              sec, later), "sec", later)
    await run(pool, store, c.ResolveObjection(objections[1], False, 0, "有签到记录", str(uuid.uuid4()), sec, later),
              "sec", later)
    await run(pool, store, c.CorrectItem("c-01", ids[6], 2, "已补充照片，迟到更正", str(uuid.uuid4()), later),
              "sup-1", later)
    final = posted + dt.timedelta(days=7, minutes=1)
    await run(pool, store, c.FinaliseMonth("c-01", "2026-11", final), "sec", final)
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


async def test_two_signatures_decided_on_the_same_version_one_appends_the_other_is_decided_again(
    pool: asyncpg.Pool, settings: Settings, review_store: EventStore, feed: DeclarationsFeed
) -> None:
    """Given a verified month, when the secretary and a member sign at the same moment (both decided on
    the same stream version, neither seeing the other's signature), then one appends its signature and
    the other conflicts, is decided again on the new state, and certifies the month: one certification."""
    await feed.publish([declaration(i) for i in range(50)])
    await ProjectionRunner(pool, ItemsProjection(), settings).catch_up()
    await pool.execute("insert into review_status select item_id, community_id, month, 'verified' from items")
    digest = await digest_now(pool)
    both_decided = asyncio.Barrier(2)
    attempts: dict[str, list[int]] = {"sec": [], "lg-1": []}

    async def sign(signer: Signer) -> handlers.Outcome:
        async def decided(attempt: int) -> None:
            attempts[signer.sub].append(attempt)
            if attempt == 1:
                await both_decided.wait()  # both first decisions are made before either appends

        async with pool.acquire() as conn, conn.transaction():
            return await handlers.handle(conn, review_store, c.SignMonth("c-01", "2026-11", digest, signer, LAST_DAY),
                                         rules, rec(signer.sub), decided=decided)

    first, second = await asyncio.gather(sign(SIGNERS[0]), sign(SIGNERS[1]))
    outcomes = sorted([first, second], key=lambda o: o.attempts)
    assert [o.attempts for o in outcomes] == [1, 2]
    assert [type(e.event).__name__ for e in outcomes[0].envelopes] == ["CertificationSigned"]
    redecided = outcomes[1].envelopes  # decided again on the state with the other signature: the quorum is met
    assert type(redecided[-1].event) is MonthCertified and len(redecided) == 1 + 50 + 1
    assert redecided[0].sequence == outcomes[0].envelopes[-1].sequence + 1  # appended at the new version
    rows = await pool.fetch("select version, type from events where stream_id = 'community-c-01' order by version")
    assert [r["version"] for r in rows] == list(range(1, 1 + 1 + 1 + 50 + 1))
    assert sum("MonthCertified" in r["type"] for r in rows) == 1


async def test_a_command_that_keeps_conflicting_is_refused_with_409_after_the_bounded_retries(
    pool: asyncpg.Pool, settings: Settings, review_store: EventStore, feed: DeclarationsFeed
) -> None:
    await feed.publish([declaration(i) for i in range(3)])
    await ProjectionRunner(pool, ItemsProjection(), settings).catch_up()

    async def someone_else_appends(attempt: int) -> None:  # another command commits between decide and append
        await run(pool, review_store, c.DecideItem(f"c-01-i{attempt:06d}", "verified", "", c.Actor("rec-3", "c-01")),
                  "rec-3")

    async with pool.acquire() as conn, conn.transaction():
        try:
            await handlers.handle(conn, review_store, c.DecideItem("c-01-i000000", "rejected", "重复",
                                                                   c.Actor("rec-2", "c-01")),
                                  rules, rec("rec-2"), attempts=2, decided=someone_else_appends)
            raise AssertionError("expected a conflict")
        except Rejected as refused:
            assert (refused.status, refused.code) == (409, "concurrent_update") and "冲突" in refused.reason


async def test_the_snapshot_the_commands_decide_on_is_the_fold_of_the_stream(
    pool: asyncpg.Pool, settings: Settings, review_store: EventStore, feed: DeclarationsFeed
) -> None:
    """The command side's SQL snapshot equals evolve folded over the community's whole stream."""
    await a_month_through_its_whole_life(pool, settings, review_store, feed)
    async with pool.acquire() as conn:
        snapshot = await state.full(conn, "c-01")
        stream = [e.event for e in await review_store.load(conn, "community-c-01") if isinstance(e.event, ReviewEvent)]
    known = ReviewState("c-01", items={k: replace(i, status="submitted", month=i.carried_from or i.month,
                                                  carried_from=None, corrected=0) for k, i in snapshot.items.items()})
    assert fold(known, stream) == snapshot
