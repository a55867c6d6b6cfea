"""What the simulator measures besides its own requests: consumer lag and outboxes over time, CPU per
process, and when records reached Kafka.

Lag is measured where the effect is: a projection's offsets stored in its database (with its rows)
against the topics' end offsets, not the consumer's fetch position (a batch can be fetched long
before it is applied). An outbox is the events not yet published (``published_at is null``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.simulate.county import County
from shared.audit.diff import read_models
from shared.kafka import consumer_config
from shared.projection import Owners, partitions_of
from shared.settings import Settings
from shared.topics import BY_SERVICE


@dataclass
class Sample:
    t: float  # seconds since the start
    phase: str
    lag: dict[str, int]  # "review/review_items", "ranking/ranking", … and "sites/ledger" (sum over sites)
    outbox: dict[str, int]  # county services by name, and "sites" (sum)
    load: float  # the machine's 1-minute load average (other work on it shows here)


@dataclass
class Watch:
    county: County
    started: float = field(default_factory=time.monotonic)
    phase: str = "start"
    samples: list[Sample] = field(default_factory=list)
    _pools: dict[str, asyncpg.Pool] = field(default_factory=dict)
    _consumer: AIOKafkaConsumer | None = None
    _tps: list[TopicPartition] = field(default_factory=list)
    _models: dict[str, list[tuple[str, set[str]]]] = field(default_factory=dict)  # service -> (projection, topics)
    _unread: dict[str, set[tuple[str, int]]] = field(default_factory=dict)  # site process -> partitions it never reads

    async def open(self) -> None:
        self._consumer = AIOKafkaConsumer(**consumer_config(self.county.settings), group_id=None)
        await self._consumer.start()
        self._tps = await partitions_of(self._consumer, [t.name(self.county.settings) for t in BY_SERVICE.values()])
        for proc in self.county.all():
            self._pools[proc.name] = await asyncpg.create_pool(proc.dsn, min_size=1, max_size=1)
        counts = collections.Counter(tp.topic for tp in self._tps)
        for site in self.county.sites:  # a site reads the review topic in its community's partition only
            owners = Owners(self.county.settings.model_copy(update={"site": site.name}))
            self._unread[f"site-{site.name}"] = {(tp.topic, tp.partition) for tp in self._tps
                                                 if not owners.reads(tp, counts[tp.topic])}
        for service in (*self.county.services, "declarations"):  # a site runs the declarations service's
            self._models[service] = [(p.name, {t.name(self.county.settings) for t in p.topics})
                                     for p in read_models(service)]

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.close()
        if self._consumer is not None:
            await self._consumer.stop()

    async def sample(self) -> Sample:
        assert self._consumer is not None
        ends = await self._consumer.end_offsets(self._tps)
        end = {(tp.topic, tp.partition): offset for tp, offset in ends.items()}
        lag: dict[str, int] = {}
        outbox: dict[str, int] = {}
        results = await asyncio.gather(*(self._read(name, pool) for name, pool in self._pools.items()))
        for name, offsets, unpublished in results:
            site = name.startswith("site-")
            stored = {(projection, topic, partition): o for projection, topic, partition, o in offsets}
            for projection, topics in self._models["declarations" if site else name]:
                unread = self._unread.get(name, set())
                behind = sum(max(0, o - stored.get((projection, *tp), 0)) for tp, o in end.items()
                             if tp[0] in topics and tp not in unread)
                key = f"sites/{projection}" if site else f"{name}/{projection}"
                lag[key] = lag.get(key, 0) + behind
            outbox["sites" if site else name] = outbox.get("sites" if site else name, 0) + unpublished
        s = Sample(time.monotonic() - self.started, self.phase, lag, outbox, os.getloadavg()[0])
        self.samples.append(s)
        return s

    async def _read(self, name: str, pool: asyncpg.Pool) -> tuple[str, list[Any], int]:
        async with pool.acquire() as conn:
            rows = await conn.fetch("select projection, topic, partition, next_offset from projection_offsets")
            unpublished = await conn.fetchval("select count(*) from events where published_at is null")
        return name, [tuple(r) for r in rows], unpublished

    async def run(self, stop: asyncio.Event, every_s: float) -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):  # a sample missed is no reason to stop the county
                await self.sample()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)

    async def settled(self, *, lag_of: Iterable[str] = (), outboxes: Iterable[str] = (), quiet_s: float = 0.0,
                      patience_s: float = 3600) -> float:
        """Wait until the named projections have no lag and the named outboxes are empty (``quiet_s`` long);
        returns the time it first held."""
        lag_of, outboxes = list(lag_of), list(outboxes)
        deadline = time.monotonic() + patience_s
        since = None
        while True:
            s = await self.sample()
            ok = (all(v == 0 for k, v in s.lag.items() if any(k.startswith(p) for p in lag_of))
                  and all(s.outbox.get(o, 0) == 0 for o in outboxes)
                  and all(any(k.startswith(p) for k in s.lag) for p in lag_of))
            now = time.monotonic()
            if ok:
                since = since or now
                if now - since >= quiet_s:
                    return since
            else:
                since = None
            if now > deadline:
                raise RuntimeError(f"not settled within {patience_s:.0f} s: lag {s.lag}, outboxes {s.outbox}")
            await asyncio.sleep(0.25)


# ---- CPU -----------------------------------------------------------------------------------------


class CpuMeter:
    """User + system CPU seconds so far of each process (sites summed), Kafka, PostgreSQL split by the
    database its backends serve ("postgresql: review" is the review service's queries, its autovacuum
    too; a backend that exited keeps what it had when last read), the rest of PostgreSQL (background
    processes, backends that came and went between two readings) as "postgresql: other", and this
    simulator."""

    def __init__(self, county: County, kafka_pid: int | None, postgres_pid: int | None) -> None:
        self.county, self.kafka_pid, self.postgres_pid = county, kafka_pid, postgres_pid
        self.groups = {urlsplit(p.dsn).path.lstrip("/"): name for name, p in county.services.items()}
        self.groups |= {urlsplit(p.dsn).path.lstrip("/"): "sites" for p in county.site_procs.values()}
        self.backends: dict[int, tuple[str, float]] = {}  # pid -> (group, CPU seconds when last read)

    def __call__(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, proc in self.county.services.items():
            out[name] = _cpu(psutil.Process(proc.process.pid), children_too=True)
        out["sites"] = sum(_cpu(psutil.Process(p.process.pid), children_too=True)
                           for p in self.county.site_procs.values())
        if self.kafka_pid:
            out["kafka"] = _cpu(psutil.Process(self.kafka_pid))
        if self.postgres_pid:
            postmaster = psutil.Process(self.postgres_pid)
            with contextlib.suppress(psutil.Error):
                for backend in postmaster.children():
                    group = self.groups.get(_database(backend) or "")
                    if group is not None:
                        self.backends[backend.pid] = (group, _cpu(backend))
            total = _cpu(postmaster, children_too=True)  # after the backends: "other" is never below 0
            for group, seconds in self.backends.values():
                key = f"postgresql: {group}"
                out[key] = out.get(key, 0.0) + seconds
            out["postgresql: other"] = total - sum(s for _, s in self.backends.values())
        out["simulator"] = _cpu(psutil.Process())
        return out


async def postmaster(dsn: str) -> int | None:
    """The PostgreSQL server's process on this machine, when the simulator uses a running stack (None
    when it runs elsewhere): the parent of the backend that answers."""
    conn = await asyncpg.connect(dsn)
    try:  # asked while the backend is there: it exits with the connection
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(await conn.fetchval("select pg_backend_pid()")).parent()
            if parent is not None and "postgres" in parent.name():
                return parent.pid
        return None
    finally:
        await conn.close()


def _cpu(p: psutil.Process, children_too: bool = False) -> float:
    with contextlib.suppress(psutil.Error):
        t = p.cpu_times()
        total = t.user + t.system
        if children_too:
            total += t.children_user + t.children_system
            for child in p.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    c = child.cpu_times()
                    total += c.user + c.system
        return total
    return 0.0


def _database(backend: psutil.Process) -> str | None:
    """The database a PostgreSQL backend serves, from its process title ("postgres: user db host(port) state",
    "postgres: autovacuum worker db")."""
    with contextlib.suppress(psutil.Error):
        words = " ".join(backend.cmdline()).split()
        if words[1:3] == ["autovacuum", "worker"] and len(words) > 3:
            return words[3]
        if len(words) > 3 and ("(" in words[3] or words[3] == "[local]"):
            return words[2]
    return None


def cpu_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


# ---- when records reached Kafka --------------------------------------------------------------------


async def record_times(settings: Settings, topic: str, since: dict[int, int], types: tuple[str, ...] = ()
                       ) -> list[tuple[float, str, str]]:
    """(Kafka timestamp in s, ce_type, key) of the records of ``topic`` from offsets ``since`` (partition -> offset)
    to the end, of the ``types`` given (all when empty)."""
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [topic])
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, since.get(tp.partition, 0))
        out = []
        remaining = {tp for tp in tps if end[tp] > since.get(tp.partition, 0)}
        wanted = {t.encode() for t in types}
        while remaining:
            for tp, records in (await consumer.getmany(*remaining, timeout_ms=1000, max_records=20_000)).items():
                for r in records:
                    if r.offset >= end[tp]:
                        break
                    kind = next((v for k, v in r.headers if k == "ce_type"), b"")
                    if not wanted or kind in wanted:
                        out.append((r.timestamp / 1000, kind.decode(), (r.key or b"").decode(errors="replace")))
                if records and records[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
        return out
    finally:
        await consumer.stop()


async def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [topic])
        return {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()
