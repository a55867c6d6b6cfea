"""What the suite checks after a fault, reusing the auditor's code: the declarations log read back
(shared.audit.log) for the accounting, every read model against a replay (shared.audit.diff), every
hash chain against its store (shared.verify); and when the consumers and relays have caught up."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
from aiokafka import AIOKafkaConsumer

from deploy.faults.accounting import LogRecord
from deploy.faults.harness import SITE, Harness
from services.exchange.projection import ExchangeProjection
from services.ranking.projection import RankingProjection
from shared import verify as chain
from shared.audit import diff
from shared.audit.log import read_log
from shared.envelope import deployment_source, site_source
from shared.events.declarations import DeclarationSubmitted
from shared.kafka import consumer_config
from shared.projection import Projection, partitions_of
from shared.settings import Settings
from shared.topics import BY_SERVICE

SERVICES = tuple(BY_SERVICE)
Ends = dict[tuple[str, int], int]


def read_models(service: str) -> tuple[Projection, ...]:
    """What each service builds from the log (ranking and exchange name theirs in their composition root)."""
    return diff.read_models(service) or {"ranking": (RankingProjection(),),
                                         "exchange": (ExchangeProjection(),)}.get(service, ())


async def declarations_log(settings: Settings) -> list[LogRecord]:
    log = await read_log(settings, ("declarations",))
    return [LogRecord(str(e.envelope.id), f"{e.envelope.source} {e.envelope.subject}", e.envelope.sequence,
                      e.event.item_id if isinstance(e.event, DeclarationSubmitted) else None) for e in log.entries]


async def end_offsets(settings: Settings, topics: Iterable[str] | None = None) -> Ends:
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    try:
        names = list(topics) if topics is not None else [t.name(settings) for t in BY_SERVICE.values()]
        tps = await partitions_of(consumer, names)
        return {(tp.topic, tp.partition): o for tp, o in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def lagging(harness: Harness, settings: Settings, ends: Ends) -> list[str]:
    """The projections whose stored offsets are short of ``ends`` on a topic they read."""
    out = []
    for service in SERVICES:
        conn = await asyncpg.connect(harness.service_dsn(service), timeout=5)
        try:
            for projection in read_models(service):
                topics = {t.name(settings) for t in projection.topics}
                at = {(r["topic"], r["partition"]): r["next_offset"] for r in await conn.fetch(
                    "select topic, partition, next_offset from projection_offsets where projection = $1",
                    projection.name)}
                if any(at.get(tp, 0) < end for tp, end in ends.items() if tp[0] in topics and end > 0):
                    out.append(f"{service}/{projection.name}")
        finally:
            await conn.close()
    return out


def _outboxes(harness: Harness) -> list[tuple[str, str]]:
    return [*((s, harness.service_dsn(s)) for s in SERVICES), (f"site {SITE.name}", harness.site_dsn())]


async def unpublished(harness: Harness, upto: dict[str, int] | None = None) -> dict[str, int]:
    """Events in each outbox (the services' and the site's) not yet on Kafka; with ``upto``, only those at
    or before its position for that outbox (what it held then, ``outbox_heads``)."""
    out = {}
    for name, dsn in _outboxes(harness):
        if upto is not None and name not in upto:
            continue
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            n = await conn.fetchval("select count(*) from events where published_at is null and position <= $1",
                                    upto[name] if upto is not None else 2**62)
        finally:
            await conn.close()
        if n:
            out[name] = n
    return out


async def outbox_heads(harness: Harness) -> dict[str, int]:
    """The last position of each outbox now."""
    out = {}
    for name, dsn in _outboxes(harness):
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            out[name] = await conn.fetchval("select coalesce(max(position), 0) from events")
        finally:
            await conn.close()
    return out


async def models_differing(harness: Harness, settings: Settings) -> dict[str, int]:
    """Every read model replayed (in the auditor's database) up to its live offsets: differing rows."""
    audit = settings.model_copy(update={"database_url": harness.audit_dsn()})
    out = {}
    for service in SERVICES:
        for projection in read_models(service):
            result = await diff.compare(service, projection, harness.service_dsn(service), audit)
            out[f"{service}/{projection.name}"] = len(result.differences)
    return out


async def chains(harness: Harness, settings: Settings) -> dict[str, str]:
    """Each chain (a service's, the site's) verified against its store: "" when it verifies, else the problem."""
    out = {}
    todo = [(s, harness.service_dsn(s), BY_SERVICE[s].name(settings), [deployment_source(s, settings)])
            for s in SERVICES]  # the sources named: records of any other (poison, forgeries) are set aside
    todo.append((f"site {SITE.name}", harness.site_dsn(), BY_SERVICE["declarations"].name(settings),
                 [site_source(SITE.name, settings)]))
    for name, dsn, topic, sources in todo:
        report = await chain.verify(settings.model_copy(update={"database_url": dsn}), topic, sources)
        out[name] = "" if report.ok else chain.render(report).splitlines()[1]
    return out
