"""A community site keeps taking declarations while the county's Kafka is unreachable, and
delivers every one of them, in order and once, when the broker is back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from deploy.local import KafkaServer, free_port
from shared.envelope import decode
from shared.events.declarations import DeclarationSubmitted
from shared.kafka import consumer_config
from shared.projection import partitions_of
from shared.settings import Settings
from shared.topics import DECLARATIONS
from tests.integration.declarations.harness import (
    COMMUNITY,
    NOW,
    RECORDER,
    SUBJECTS,
    fresh_settings,
    key,
    register_roster,
)
from tests.support.services import running_service

pytestmark = pytest.mark.integration

N = 1_000
PEOPLE = [s["subject_id"] for s in SUBJECTS]


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[KafkaServer]:
    """The county's broker, ours alone, so we can pull its plug."""
    kafka = KafkaServer(tmp_path / "kafka", free_port(), free_port(), heap="512m")
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


async def unpublished(settings: Settings) -> int:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await conn.fetchval("select count(*) from events where published_at is null")  # type: ignore[no-any-return]
    finally:
        await conn.close()


async def read_declarations(settings: Settings) -> dict[int, list[DeclarationSubmitted]]:
    """Every DeclarationSubmitted on the topic, per partition in offset order."""
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [DECLARATIONS.name(settings)])
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        out: dict[int, list[DeclarationSubmitted]] = defaultdict(list)
        ids: Counter[str] = Counter()
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            for tp, records in (await consumer.getmany(*remaining, timeout_ms=1000)).items():
                for r in records:
                    env = decode(r.headers, r.key, r.value)
                    ids[str(env.id)] += 1
                    if isinstance(env.event, DeclarationSubmitted):
                        out[tp.partition].append(env.event)
                if records and records[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
        assert not [i for i, n in ids.items() if n > 1], "an event was published twice"
        return out
    finally:
        await consumer.stop()


async def test_given_the_broker_down_when_a_site_takes_1000_declarations_then_all_arrive_in_order_once(
    stack: tuple[str, str], private_kafka: KafkaServer
) -> None:
    _, dsn = stack
    settings = await fresh_settings(private_kafka.bootstrap, dsn)
    with contextlib.ExitStack() as stack_:
        mp = stack_.enter_context(pytest.MonkeyPatch.context())
        mp.setenv("DECLARATIONS_NOW", NOW.isoformat())
        svc = stack_.enter_context(running_service("declarations", settings))
        mp.undo()
        async with httpx.AsyncClient(base_url=svc.url, timeout=30) as http:
            await register_roster(http)
            # given: the county's Kafka goes away
            await asyncio.to_thread(private_kafka.kill)
            # when: the site keeps taking declarations, every one answered 201
            started = time.monotonic()
            for n in range(N):
                body = {"community_id": COMMUNITY, "subject_id": PEOPLE[n % len(PEOPLE)],
                        "rule_code": "VOLUNTEER_HOURS", "quantity": 1, "occurred_on": "2026-11-20",
                        "channel": "oral", "description": f"n={n:04d}"}
                r = await http.post("/declarations", json=body, headers=RECORDER | key())
                assert r.status_code == 201, (n, r.text)
            took = time.monotonic() - started
            assert await unpublished(settings) >= N, "declarations reached Kafka while it was down?"
            # then: the broker comes back and the relay delivers everything
            await asyncio.to_thread(private_kafka.start)
            deadline = time.monotonic() + 120
            while await unpublished(settings) > 0:
                assert time.monotonic() < deadline, "the outbox did not drain within 120 s"
                await asyncio.sleep(0.25)
    by_partition = await read_declarations(settings)
    items = [ev for evs in by_partition.values() for ev in evs]
    assert len(items) == N and len({ev.item_id for ev in items}) == N
    assert sorted(ev.description for ev in items) == [f"n={n:04d}" for n in range(N)]
    for evs in by_partition.values():  # in order: each subject's items in the order the site took them
        per_subject: dict[str, list[str]] = defaultdict(list)
        for ev in evs:
            per_subject[ev.subject_id].append(ev.description)
        for seq in per_subject.values():
            assert seq == sorted(seq)
    print(f"\n{N} declarations taken offline in {took:.1f}s ({N / took:.0f}/s), all delivered after restart")
