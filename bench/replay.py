"""Replay benchmark: a full replay into a scratch schema against the raw aiokafka consumer, same run.

The log: ``--events`` records (default 1,000,000) of both services the ledger reads, each service's
topic one hash chain as the relay writes it: on the declarations topic subjects registered and
points items (declarations and deductions), on the review topic the review of those items
(verified, returned, rejected, awarded) and each community month's ``MonthCertified``.
Prints, over ``--rounds`` interleaved rounds (medians compared):
  raw aiokafka consumer rate over the same topics (records/s, from creating the consumer to the last record)
  ``rebuild`` of the ledger into its scratch schema, one process and one per core (events/s)
  their ratio (issue 13: aim ≥ 0.5, moonshot 0.7)
Usage: .venv/bin/python bench/replay.py [--events 1000000] [--rounds 2] [--workers N] [--compare-pydantic] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from statistics import median

import asyncpg
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy.local import create_database
from deploy.testing import throwaway_stack
from services.declarations.ledger import LedgerProjection
from shared import envelope, replay
from shared.envelope import GENESIS_HASH, encode_body, headers, link_hash, source_for
from shared.events import Event, load_catalogue
from shared.events.declarations import DeclarationSubmitted, DeductionRecorded, SubjectRegistered
from shared.events.review import ItemRejected, ItemReturned, ItemVerified, MonthCertified, PointsAwarded
from shared.kafka import consumer_config, producer_config
from shared.projection import partitions_of
from shared.settings import Settings
from shared.topics import ALL, DECLARATIONS, REVIEW, create_topics

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)
SUBJECTS, COMMUNITIES = 5000, 7


def declarations_log(n: int) -> Iterator[tuple[str, str, Event]]:
    """(key, stream, event): the roster first, then points items (one in ten a deduction)."""
    for s in range(min(SUBJECTS, n)):
        subject = f"p-{s:05d}"
        yield subject, f"subject-{subject}", SubjectRegistered(
            subject_id=subject, community_id=f"c-{s % COMMUNITIES:02d}", kind="person", name=f"居民{s}",
            categories=("resident",), registered_on=dt.date(2026, 1, 1))
    for i in range(n - min(SUBJECTS, n)):
        subject, common = f"p-{i % SUBJECTS:05d}", {}
        common = dict(item_id=f"item-{i:07d}", community_id=f"c-{i % SUBJECTS % COMMUNITIES:02d}", subject_id=subject,
                      category="resident", rule_version=1, quantity=1, occurred_on=dt.date(2026, 11, 1 + i % 28),
                      entered_by=subject, declared_by=subject)
        if i % 10 == 9:
            yield subject, f"declaration-item-{i:07d}", DeductionRecorded(
                **common, rule_code="LITTERING", dimension="civility_hygiene", points=-2, channel="office",
                reason="乱扔垃圾")
        else:
            yield subject, f"declaration-item-{i:07d}", DeclarationSubmitted(
                **common, rule_code="HYGIENE_SUPERVISION", dimension="civility_hygiene", points=5, channel="app",
                description="楼道卫生监督")


def review_log(n: int) -> Iterator[tuple[str, str, Event]]:
    """Decisions on items item-0000000…, awards, and one MonthCertified per 500 awards."""
    awarded = 0
    i = 0
    while i < n:
        item, community = f"item-{i:07d}", f"c-{i % SUBJECTS % COMMUNITIES:02d}"
        decision = (ItemVerified(item_id=item, community_id=community, month="2026-11") if i % 20 < 17 else
                    ItemReturned(item_id=item, community_id=community, month="2026-11", to_fix="缺少照片")
                    if i % 20 < 19 else ItemRejected(item_id=item, community_id=community, month="2026-11",
                                                    reason="重复申报"))
        yield community, f"community-{community}", decision
        i += 1
        if type(decision) is ItemVerified and i < n:
            yield community, f"community-{community}", PointsAwarded(
                item_id=item, community_id=community, month="2026-11", subject_id=f"p-{i % SUBJECTS:05d}",
                category="resident", dimension="civility_hygiene", rule_code="HYGIENE_SUPERVISION", points=5)
            i += 1
            awarded += 1
            if awarded % 500 == 0 and i < n:
                yield community, f"community-{community}", MonthCertified(
                    community_id=community, month="2026-11", count=500, total=2500, digest="0" * 64,
                    signed_by=("secretary", "member"), certified_at=T0)
                i += 1


async def produce(settings: Settings, topic: str, service: str, log: Iterator[tuple[str, str, Event]]) -> int:
    """Write one service's chain straight to its topic, as the relay would (headers, keys, order)."""
    source, prev, position = source_for(service, settings), GENESIS_HASH, 0
    producer = AIOKafkaProducer(**producer_config(settings))
    await producer.start()
    try:
        futures = []
        for key, stream, ev in log:
            position += 1
            body, type_name = encode_body(ev), ev.type_name()
            event_id, correlation, when = uuid.uuid4(), uuid.uuid4(), T0 + dt.timedelta(milliseconds=position)
            digest = link_hash(position=position, prev_hash=prev, event_id=event_id, type_name=type_name,
                               source=source, subject=stream, version=1, time=when, actor=key,
                               correlation_id=correlation, causation_id=None, key=key, body=body)
            hs = headers(event_id=event_id, source=source, type_name=type_name, stream_id=stream, version=1,
                         time=when, actor=key, correlation_id=correlation, causation_id=None, prev_hash=prev,
                         digest=digest, position=position, key=key)
            futures.append(await producer.send(topic, value=body, key=key.encode(), headers=hs))
            prev = digest
            if len(futures) >= 20_000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return position


async def raw_consume(settings: Settings, topics: list[str], n: int) -> float:
    """The baseline, timed like the replay: from creating the consumer to the last record."""
    began = time.perf_counter()
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, topics)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            seen += sum(len(v) for v in batch.values())
        return time.perf_counter() - began
    finally:
        await consumer.stop()


async def profiled_rebuild(settings: Settings, top: int = 30) -> None:
    """One more rebuild in this process under cProfile: where the time of a replay goes."""
    import cProfile
    import pstats

    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    profiler = cProfile.Profile()
    try:
        profiler.enable()
        await replay.rebuild(pool, LedgerProjection(), settings, workers=1, digest=False)
        profiler.disable()
    finally:
        await pool.close()
    stats = pstats.Stats(profiler).sort_stats("tottime")
    stats.print_stats(top)
    stats.print_callers("__instancecheck__|getattr")


async def run(n: int, bootstrap: str, dsn: str, workers_parallel: int, rounds: int, profile: bool = False,
              compare_pydantic: bool = False) -> None:
    load_catalogue()
    ns = f"bench{uuid.uuid4().hex[:6]}"
    settings = Settings(database_url=create_database(dsn, ns), kafka_bootstrap_servers=bootstrap, topic_namespace=ns)
    await create_topics(settings, ALL)
    on_review = n // 5
    print(f"writing {n:,} events ({n - on_review:,} declarations, {on_review:,} review) …", flush=True)
    began = time.perf_counter()
    written = (await produce(settings, DECLARATIONS.name(settings), "declarations", declarations_log(n - on_review))
               + await produce(settings, REVIEW.name(settings), "review", review_log(on_review)))
    print(f"written {written:,} in {time.perf_counter() - began:.1f} s", flush=True)
    topics = [t.name(settings) for t in LedgerProjection.topics]
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    consume: list[float] = []
    # (processes, body decoder) -> seconds per round; "pydantic" is the replay without the compiled decoder
    replays: dict[tuple[int, str], list[float]] = {(1, "compiled"): [], (workers_parallel, "compiled"): []}
    if compare_pydantic:
        replays[1, "pydantic"] = []
    try:
        for r in range(1, rounds + 1):
            consume.append(await raw_consume(settings, topics, written))
            print(f"round {r}: raw aiokafka consumer : {written / consume[-1]:>10,.0f} records/s "
                  f"({consume[-1]:.2f} s)", flush=True)
            for (workers, body), times in replays.items():
                with decoding_bodies_by(body):
                    began, cpu = time.perf_counter(), time.process_time()
                    built = await replay.rebuild(pool, LedgerProjection(), settings, workers=workers, digest=False)
                    times.append(time.perf_counter() - began)
                    cpu = time.process_time() - cpu
                print(f"round {r}: rebuild into {built.schema} ({label(workers, body)}): "
                      f"{written / times[-1]:>10,.0f} events/s ({times[-1]:.2f} s, this process's CPU {cpu:.2f} s; "
                      f"applied {built.events:,}; "
                      f"rows {built.rows})", flush=True)
                if built.events != written:
                    raise SystemExit(f"replay applied {built.events} of {written} events")
    finally:
        await pool.close()
    if profile:
        await profiled_rebuild(settings)
    print()
    for (workers, body), times in replays.items():
        print(f"replay ÷ raw consumer = {median(consume) / median(times):.2f}   "
              f"({written / median(times):,.0f} vs {written / median(consume):,.0f} events/s; medians of {rounds} "
              f"rounds; {label(workers, body)}; aim ≥ 0.5, moonshot 0.7)")


def label(workers: int, body: str) -> str:
    return f"{workers} process{'es' if workers > 1 else ''}, {body} body decoder"


@contextlib.contextmanager
def decoding_bodies_by(body: str) -> Iterator[None]:
    """``pydantic``: this process decodes every body with pydantic, as before the compiled decoder."""
    if body == "compiled":
        yield
        return
    compiled = envelope.decoder
    envelope.decoder = lambda cls: None  # type: ignore[assignment]
    try:
        yield
    finally:
        envelope.decoder = compiled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes for the parallel replay (default: one per core)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (medians are compared)")
    parser.add_argument("--compare-pydantic", action="store_true",
                        help="also replay in one process with pydantic decoding every body (as before)")
    parser.add_argument("--profile", action="store_true", help="then one more rebuild under cProfile")
    args = parser.parse_args()
    with throwaway_stack("points-bench-replay-") as handle:
        # On uvloop, as the services run (uvicorn with uvloop): baseline and replays share this loop.
        uvloop.run(run(args.events, handle.bootstrap, handle.dsn, args.workers, args.rounds, args.profile,
                        args.compare_pydantic))


if __name__ == "__main__":
    main()
