"""Cluster mode: three KRaft nodes, topics with replication factor 3 and min.insync.replicas 2.

A producer with ``acks=all`` (the project's producer settings) writes numbered records on every
partition while the node leading partition 0 is killed with -9 and later started again. Every
record the producer saw acknowledged is on the topic exactly once, each key's records in the
order they were sent; a consumer group keeps reading through the failure. The time from the kill
to the next acknowledgement on a partition that node led, and until the node is back in every
ISR, are printed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from deploy import credentials
from deploy.local import KafkaCluster, free_port
from shared.kafka import client_config, consumer_config, producer_config
from shared.settings import Settings
from shared.topics import DECLARATIONS, create_topics

pytestmark = pytest.mark.integration

PARTITIONS = 6


@pytest.fixture(scope="module")
def cluster(stack: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Ours alone (the session's secrets), so we can pull a node's plug."""
    root: Path = tmp_path_factory.mktemp("cluster")
    c = KafkaCluster(root, [free_port() for _ in range(3)], [free_port() for _ in range(3)], heap="512m",
                     secrets=credentials.from_env())
    c.start(timeout=120)
    try:
        yield c
    finally:
        c.stop()


def settings_for(cluster: KafkaCluster) -> Settings:
    auth = cluster.client_config()
    return Settings(kafka_bootstrap_servers=cluster.bootstrap, topic_namespace=f"t{uuid.uuid4().hex[:10]}",
                    topic_partitions=PARTITIONS, topic_replication_factor=3, topic_min_insync_replicas=2,
                    kafka_security_protocol=auth.get("security_protocol", "PLAINTEXT"),
                    kafka_sasl_mechanism=auth.get("sasl_mechanism"),
                    kafka_sasl_username=auth.get("sasl_plain_username"),
                    kafka_sasl_password=auth.get("sasl_plain_password"))


async def layout(settings: Settings, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """partition -> (leader, replicas, isr)."""
    admin = AIOKafkaAdminClient(**client_config(settings))
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return {p["partition"]: (p["leader"], sorted(p["replicas"]), sorted(p["isr"]))
            for p in described[0]["partitions"]}


async def settled_layout(settings: Settings, topic: str, within_s: float = 60.0
                         ) -> dict[int, tuple[int, list[int], list[int]]]:
    """The topic's layout once every partition has a leader and three replicas in sync (a new
    topic's metadata reaches the brokers a moment after it is created)."""
    deadline = time.monotonic() + within_s
    while True:
        got = await layout(settings, topic)
        if (got and all(lead >= 0 and len(isr) == 3 for lead, _, isr in got.values())) or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.5)


async def test_given_three_nodes_when_a_leader_is_killed_under_load_then_no_acknowledged_record_is_lost(
    cluster: KafkaCluster,
) -> None:
    settings = settings_for(cluster)
    topic = DECLARATIONS.name(settings)
    await create_topics(settings, (DECLARATIONS,))
    before = await settled_layout(settings, topic)
    assert before and all(len(r) == 3 and len(isr) == 3 for _, r, isr in before.values()), before

    acked: dict[int, list[int]] = defaultdict(list)  # key -> sequence numbers acknowledged, in ack order
    acked_at: dict[int, list[float]] = defaultdict(list)  # partition -> ack times
    failed = 0
    stop = asyncio.Event()
    producer = AIOKafkaProducer(**producer_config(settings))

    async def produce(key: int) -> None:
        nonlocal failed
        seq = 0
        while not stop.is_set():
            try:
                meta = await producer.send_and_wait(topic, key=str(key).encode(), value=f"{key}:{seq}".encode())
                acked[key].append(seq)
                acked_at[meta.partition].append(time.monotonic())
            except Exception:  # not acknowledged: the producer may not count it, and the test does not either
                failed += 1
                await asyncio.sleep(0.05)
            seq += 1

    consumed = 0
    consumer = AIOKafkaConsumer(topic, **(consumer_config(settings) | {"enable_auto_commit": True}),
                                group_id=f"{settings.topic_namespace}.g")
    await consumer.start()

    async def consume() -> None:
        nonlocal consumed
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            consumed += sum(len(v) for v in batch.values())

    await producer.start()
    workers = [asyncio.create_task(produce(k)) for k in range(12)] + [asyncio.create_task(consume())]
    try:
        await asyncio.sleep(3)
        leader = before[0][0]
        led = {p for p, (lead, _, _) in (await layout(settings, topic)).items() if lead == leader}
        consumed_before = consumed
        killed_at = time.monotonic()
        cluster.kill(leader - 1)  # kill -9 the node leading partition 0
        first_ack = None
        while first_ack is None:  # a new leader is elected once the dead node's session lapses
            await asyncio.sleep(0.2)
            first_ack = min((t for p in led for t in acked_at[p] if t > killed_at), default=None)
            assert time.monotonic() - killed_at < 90, "no acknowledgement on the led partitions 90 s after the kill"
        restarted_at = time.monotonic()
        await asyncio.to_thread(cluster.nodes[leader - 1].start, 90)
        while True:  # back in every ISR
            now = await layout(settings, topic)
            if all(len(isr) == 3 for _, _, isr in now.values()):
                break
            assert time.monotonic() - restarted_at < 120, now
            await asyncio.sleep(0.5)
        rejoined = time.monotonic() - restarted_at
        await asyncio.sleep(2)
        assert consumed > consumed_before, "the consumer group stopped reading"
    finally:
        stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
        await producer.stop()
        await consumer.stop()

    # read everything back from the start
    reader = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await reader.start()
    on_topic: dict[int, list[int]] = defaultdict(list)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        todo = {tp for tp in tps if ends[tp] > 0}
        while todo:
            for tp, records in (await reader.getmany(*todo, timeout_ms=1000)).items():
                for r in records:
                    key, seq = r.value.decode().split(":")
                    on_topic[int(key)].append(int(seq))
                if records and records[-1].offset >= ends[tp] - 1:
                    todo.discard(tp)
    finally:
        await reader.stop()

    total = sum(len(v) for v in acked.values())
    for key, seqs in acked.items():
        got = on_topic[key]
        assert len(got) == len(set(got)), f"key {key}: a record twice"
        assert got == sorted(got), f"key {key}: out of order"
        missing = set(seqs) - set(got)
        assert not missing, f"key {key}: {len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}"
    print(f"\nkilled node {leader} (led partitions {sorted(led)}) under load: {total:,} records acknowledged, "
          f"0 lost, 0 doubled, 0 out of order; {failed} sends not acknowledged (not counted)")
    print(f"recovery: first acknowledgement on its partitions {first_ack - killed_at:.2f} s after the kill; "
          f"node back in every ISR {rejoined:.1f} s after its restart; consumer group read {consumed:,} records")
