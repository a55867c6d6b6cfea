"""Spine benchmark: relay and projection against raw aiokafka on the same broker, same run.

Prints:
  relay publish rate ÷ raw aiokafka producer rate (same producer settings, same records)
  projection replay rate ÷ raw aiokafka consumer rate (same topic), for a replay in one process
  and one shared out over --workers processes; baseline and replays interleave over --rounds
  rounds and their medians are compared
  the verifier's rate (python -m shared.verify): every event read back from Kafka, its chain link
  recomputed and compared with the store
Usage: .venv/bin/python bench/spine.py [--events 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any

import asyncpg
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy.local import create_database
from deploy.testing import throwaway_stack
from services.declarations.ledger import LedgerProjection
from shared import projection as projections
from shared import store
from shared.envelope import GENESIS_HASH, encode_body, headers, link_hash, source_for
from shared.events import load_catalogue
from shared.events.declarations import DeclarationSubmitted
from shared.kafka import consumer_config, producer_config
from shared.projection import partitions_of
from shared.relay import Relay
from shared.settings import Settings
from shared.topics import ALL, DECLARATIONS, Topic, create_topics
from shared.verify import verify

RAW = Topic("bench-raw", "subject id", "raw aiokafka baseline")
T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)


def make_rows(n: int, topic: str, source: str) -> list[tuple[Any, ...]]:
    """Rows as EventStore.append writes them: one chain over the log, positions 1..n."""
    rows: list[tuple[Any, ...]] = []
    prev = GENESIS_HASH
    for i in range(n):
        subject = f"p-{i % 5000:05d}"
        ev = DeclarationSubmitted(
            item_id=f"item-{i:07d}", community_id=f"c-{i % 7:02d}", subject_id=subject, category="resident",
            rule_code="HYGIENE_SUPERVISION", rule_version=1, dimension="civility_hygiene", quantity=1, points=5,
            channel="app", occurred_on=dt.date(2026, 11, 1 + i % 28), description="楼道卫生监督", evidence=(),
            entered_by=subject, declared_by=subject,
        )
        body = encode_body(ev)
        stream = f"declaration-item-{i:07d}"
        event_id, correlation, time_ = uuid.uuid4(), uuid.uuid4(), T0 + dt.timedelta(milliseconds=i)
        digest = link_hash(position=i + 1, prev_hash=prev, event_id=event_id, type_name=ev.type_name(), source=source,
                           subject=stream, version=1, time=time_, actor=subject, correlation_id=correlation,
                           causation_id=None, key=subject, body=body)
        rows.append((event_id, stream, 1, ev.type_name(), topic, subject, body, time_, subject, correlation, None,
                     prev, digest, source, i + 1))
        prev = digest
    return rows


async def raw_produce(settings: Settings, rows: list[tuple[Any, ...]], topic: str) -> float:
    producer = AIOKafkaProducer(**producer_config(settings))
    await producer.start()
    try:
        began = time.perf_counter()
        futures = []
        for r in rows:
            hs = headers(event_id=r[0], source=r[13], type_name=r[3], stream_id=r[1], version=r[2],
                         time=r[7], actor=r[8], correlation_id=r[9], causation_id=None,
                         prev_hash=r[11], digest=r[12], position=r[14], key=r[5])
            futures.append(await producer.send(topic, value=r[6], key=str(r[5]).encode(), headers=hs))
        await asyncio.gather(*futures)
        return time.perf_counter() - began
    finally:
        await producer.stop()


async def raw_consume(settings: Settings, topic: str, n: int) -> float:
    """The baseline, timed like the replay: from creating the consumer to the last record."""
    began = time.perf_counter()
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [topic])
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            seen += sum(len(v) for v in batch.values())
        return time.perf_counter() - began
    finally:
        await consumer.stop()


async def run(n: int, bootstrap: str, dsn: str, workers_parallel: int, rounds: int, skip_replay: bool) -> None:
    load_catalogue()
    ns = f"bench{uuid.uuid4().hex[:6]}"
    db_dsn = create_database(dsn, ns)
    settings = Settings(database_url=db_dsn, kafka_bootstrap_servers=bootstrap, topic_namespace=ns,
                        relay_batch_size=5000)
    await create_topics(settings, (*ALL, RAW))
    topic = DECLARATIONS.name(settings)
    pool = await asyncpg.create_pool(db_dsn, min_size=2, max_size=4)
    async with pool.acquire() as conn:
        await store.migrate(conn)
        await projections.migrate(conn, LedgerProjection())
    print(f"preparing {n:,} DeclarationSubmitted events …", flush=True)
    rows = make_rows(n, topic, source_for("declarations", settings))
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "events", records=rows,
            columns=["event_id", "stream_id", "version", "type", "topic", "key", "body", "recorded_at", "actor",
                     "correlation_id", "causation_id", "prev_hash", "hash", "source", "log_position"])

    raw_s = await raw_produce(settings, rows, RAW.name(settings))
    print(f"raw aiokafka producer : {n / raw_s:>10,.0f} records/s ({raw_s:.2f} s)", flush=True)

    relay = Relay(pool, settings, source_for("declarations", settings))
    began = time.perf_counter()
    async with pool.acquire() as conn, pool.acquire() as marker:
        await relay.drain(conn, marker)
    await relay.close()
    relay_s = time.perf_counter() - began
    print(f"relay (store → Kafka) : {n / relay_s:>10,.0f} events/s  ({relay_s:.2f} s)", flush=True)
    print(f"relay ÷ raw producer  = {raw_s / relay_s:.2f}   (aim ≥ 0.5)", flush=True)

    began = time.perf_counter()
    report = await verify(settings, topic)
    verify_s = time.perf_counter() - began
    if not report.ok or report.topic_records != n:
        raise SystemExit(f"verifier: {report.problems[:3]} ({report.topic_records} records)")
    print(f"verifier (shared.verify): {n / verify_s:>10,.0f} events/s over {n:,} events "
          f"({verify_s:.2f} s: store read, Kafka read {report.topic_seconds:.2f} s incl. recompute + compare)",
          flush=True)
    if skip_replay:
        await pool.close()
        return

    # The consumer side is short and CPU-bound, so a busy neighbour on a shared machine moves it:
    # interleave baseline and replays over several rounds and compare medians.
    consume: list[float] = []
    replays: dict[int, list[float]] = {1: [], workers_parallel: []}
    for r in range(1, rounds + 1):
        consume.append(await raw_consume(settings, topic, n))
        print(f"round {r}: raw aiokafka consumer : {n / consume[-1]:>10,.0f} records/s ({consume[-1]:.2f} s)",
              flush=True)
        for workers, times in replays.items():
            began = time.perf_counter()
            built = await projections.rebuild(pool, LedgerProjection(), settings, workers=workers, digest=False)
            times.append(time.perf_counter() - began)
            applied, rows_in_ledger = built.events, built.rows["ledger"]  # built in a scratch schema
            print(f"round {r}: projection replay ({workers} process{'es' if workers > 1 else ''}): "
                  f"{n / times[-1]:>10,.0f} events/s ({times[-1]:.2f} s; applied {applied:,}, "
                  f"ledger rows {rows_in_ledger:,})", flush=True)
            if applied != n or rows_in_ledger != n:
                raise SystemExit(f"projection applied {applied} of {n} events")
    await pool.close()
    print()
    print(f"relay ÷ raw producer      = {raw_s / relay_s:.2f}   (aim ≥ 0.5)")
    for workers, times in replays.items():
        print(f"projection ÷ raw consumer = {median(consume) / median(times):.2f}   (aim ≥ 0.5, floor 0.3; medians of "
              f"{rounds} rounds; replay in {workers} process{'es' if workers > 1 else ''})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes for the parallel replay (default: one per core)")
    parser.add_argument("--rounds", type=int, default=3, help="consumer-side rounds (medians are compared)")
    parser.add_argument("--log-only", action="store_true", help="relay and verifier only, no projection replay")
    args = parser.parse_args()
    with throwaway_stack("points-bench-") as handle:
        # On uvloop, as the services run (uvicorn with uvloop): baseline and replays share this loop.
        uvloop.run(run(args.events, handle.bootstrap, handle.dsn, args.workers, args.rounds, args.log_only))


if __name__ == "__main__":
    main()
