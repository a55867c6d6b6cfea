"""The faults: each begins (``inflict``), lasts ``hold`` seconds, and ends (``restore``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from deploy.faults.checks import end_offsets
from deploy.faults.harness import SITE, Harness
from shared.envelope import site_source
from shared.kafka import consumer_config, producer_config
from shared.projection import partitions_of
from shared.settings import Settings
from shared.topics import BY_SERVICE

Facts = dict[str, Any]  # what a fault saw, for the report
Step = Callable[[Harness, Settings], Awaitable[Facts | None]]
POISON_SOURCE = "/fault-suite/poison"  # no service's source: the chains set these records aside


@dataclass(frozen=True)
class Fault:
    name: str
    inflict: Step
    restore: Step | None = None
    hold: float = 0.0


async def _nothing(harness: Harness, settings: Settings) -> None:
    return None


def broker_killed(index: int, hold: float) -> Fault:
    async def kill(h: Harness, s: Settings) -> None:
        await asyncio.to_thread(h.kill_broker, index)

    async def start(h: Harness, s: Settings) -> None:
        await asyncio.to_thread(h.start_broker, index)

    return Fault(f"broker {index + 1} kill -9", kill, start, hold)


def postgres_restarted() -> Fault:
    async def restart(h: Harness, s: Settings) -> None:
        await asyncio.to_thread(h.restart_postgres)

    return Fault("PostgreSQL restart", restart)


def service_killed(name: str, hold: float) -> Fault:
    async def kill(h: Harness, s: Settings) -> None:
        await asyncio.to_thread(h.kill_service, name)

    async def start(h: Harness, s: Settings) -> None:
        await asyncio.to_thread(h.start_service, name)

    return Fault(f"{name} kill -9", kill, start, hold)


def site_cut(hold: float) -> Fault:
    """The site's network link to the brokers cut (``deploy.link``): its relay and its consumers run on, the
    site takes declarations into its outbox. Facts: the relay's pid at the cut and at the restore, and how
    many of the site's records reached the declarations topic while cut (from a moment after the cut)."""
    seen: dict[str, Any] = {}

    async def cut(h: Harness, s: Settings) -> None:
        seen.clear()
        seen["relay_pid_at_cut"] = h.site_relay_pid
        await asyncio.to_thread(h.cut_site_link)
        await asyncio.sleep(1.0)  # a request the broker had whole before the cut may still be appended
        seen["ends"] = await end_offsets(s, [BY_SERVICE["declarations"].name(s)])

    async def restore(h: Harness, s: Settings) -> Facts:
        during = await _from_source(s, seen.pop("ends"), site_source(SITE.name, s))
        await asyncio.to_thread(h.restore_site_link)
        return {**seen, "relay_pid_at_restore": h.site_relay_pid, "site_records_on_topic_while_cut": during,
                "connections_refused_while_cut": h.link.refused if h.link else None}

    return Fault(f"site cut off {hold:g} s", cut, restore, hold)


async def _from_source(settings: Settings, since: dict[tuple[str, int], int], source: str) -> int:
    """Records from ``source`` on the partitions of ``since`` after its offsets, up to their ends now."""
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    n = 0
    try:
        tps = [TopicPartition(t, p) for t, p in since]
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        todo = {tp: ends[tp] for tp in tps if ends[tp] > since[tp.topic, tp.partition]}
        for tp in todo:
            consumer.seek(tp, since[tp.topic, tp.partition])
        while todo:
            for tp, records in (await consumer.getmany(*todo, timeout_ms=1000)).items():
                n += sum(1 for r in records if r.offset < todo[tp] and (b"ce_source", source.encode()) in
                         [(k.encode(), v) for k, v in r.headers])
                if records and records[-1].offset >= todo[tp] - 1:
                    del todo[tp]
    finally:
        await consumer.stop()
    return n


async def _records(settings: Settings, per_partition: int) -> list[tuple[str, int, bytes | None, bytes | None,
                                                                          list[tuple[str, bytes]]]]:
    """The last ``per_partition`` records of every partition of every service topic."""
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    out = []
    try:
        tps = await partitions_of(consumer, [t.name(settings) for t in BY_SERVICE.values()])
        ends = await consumer.end_offsets(tps)
        todo: dict[TopicPartition, int] = {}
        consumer.assign(tps)
        for tp in tps:
            if ends[tp]:
                start = max(0, ends[tp] - per_partition)
                consumer.seek(tp, start)
                todo[tp] = ends[tp]
        while todo:
            for tp, records in (await consumer.getmany(*todo, timeout_ms=1000)).items():
                out += [(tp.topic, tp.partition, r.key, r.value, list(r.headers)) for r in records
                        if r.offset < todo[tp]]
                if records and records[-1].offset >= todo[tp] - 1:
                    del todo[tp]
    finally:
        await consumer.stop()
    return out


def duplicates(per_partition: int) -> Fault:
    """Already published records produced again, byte for byte, to the same partitions."""
    async def deliver(h: Harness, s: Settings) -> None:
        producer = AIOKafkaProducer(**producer_config(s))
        await producer.start()
        try:
            for topic, partition, key, value, headers in await _records(s, per_partition):
                await producer.send(topic, value=value, key=key, partition=partition, headers=headers)
            await producer.flush()
        finally:
            await producer.stop()

    return Fault(f"duplicates ({per_partition}/partition)", deliver)


def _poison(key: bytes) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
    def hs(**extra: bytes) -> list[tuple[str, bytes]]:
        base = {"ce_specversion": b"1.0", "ce_id": str(uuid.uuid4()).encode(), "ce_source": POISON_SOURCE.encode(),
                "ce_type": b"points.declarations.DeclarationSubmitted.v1", "ce_time": b"2026-12-01T00:00:00Z"}
        return list((base | extra).items())
    return [(b"\xff\xfe\x00 not json", hs()),
            (b'{"n": 1}', []),  # no headers at all
            (b'{"n": 1}', hs(ce_type=b"points.nowhere.Exploded.v1")),
            (b'{"item_id": 5}', hs()),  # a body not matching its type, from no owning source
            (b"{}", hs(ce_time=b"yesterday")),
            (b"{}", hs(ce_id=b"not-a-uuid"))]


def poison(per_topic_keys: int = 3) -> Fault:
    """Records no consumer may apply, on every topic: each goes to the dead-letter topic, the rest flows on."""
    async def deliver(h: Harness, s: Settings) -> None:
        producer = AIOKafkaProducer(**producer_config(s))
        await producer.start()
        try:
            for topic in BY_SERVICE.values():
                for k in range(per_topic_keys):
                    key = f"poison-{k}".encode()
                    for value, headers in _poison(key):
                        await producer.send(topic.name(s), value=value, key=key, headers=headers)
            await producer.flush()
        finally:
            await producer.stop()

    return Fault("poison records, every topic", deliver)
