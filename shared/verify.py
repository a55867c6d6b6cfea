"""The auditor's verifier: a service's event store and its Kafka topic against one hash chain.

    python -m shared.verify [--service review] [--database-url URL] [--topic NAME] [--json]

Reads every chained row of the store (``log_position`` order) and every record of the topic
(all partitions, up to their end offsets when it starts), recomputes each link
(``shared.envelope.canonical``: sha256 over the whole envelope and the body) and walks both
chains side by side. It names the FIRST event, by chain position, that was altered, inserted,
deleted or reordered, in the store or on the topic, and every event where store and topic
disagree; it exits 1 on any problem (2 on a usage error). ``--json`` prints one JSON object.

Several chains may share a topic (the county's declarations service and each community site write
the declarations topic, each with its own source): a chain is the records of its sources only
(default: the sources its store's rows carry; ``--site NAME`` for a site's); the others are counted
per source, not checked here. ``verify_all`` checks several chains of one topic in a single read of
it (the auditor's command line and the county simulator verify every site's chain so).

Kafka orders records only within a partition: on the topic, positions must rise within each
partition and together make 1, 2, 3 … with no gap. A record the relay sent twice (a crash
between send and mark) is reported as a repeat, not a problem. Rows at the end of the store
not yet on the topic are "unpublished", not a problem. Records from before the chain (no
``ce_sequence``) must match a legacy store row by id and hash.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.envelope import CHAIN_RECIPE, GENESIS_HASH, format_sequence, site_source
from shared.kafka import consumer_config
from shared.settings import Settings, get_settings
from shared.sites import SITE_SERVICE
from shared.topics import BY_SERVICE

# The chained fields, in the order of the recipe (after sequence and prevhash); their header names.
FIELDS = ("id", "type", "source", "subject", "streamversion", "time", "actor", "correlationid", "causationid",
          "partitionkey")
_HEADERS = tuple(f"ce_{name}" for name in FIELDS)
_RECIPE = CHAIN_RECIPE.encode()


@dataclass(slots=True)
class Link:
    """One chained event as the store or the topic holds it: every field as its header's bytes."""

    position: int
    seq: bytes  # the position as ce_sequence (20 digits)
    prev_hash: bytes
    hash: bytes
    fields: tuple[bytes, ...]  # FIELDS, in order
    body: bytes
    partition: int  # -1: the store
    offset: int

    @property
    def event_id(self) -> str:
        return self.fields[0].decode(errors="replace")

    @property
    def where(self) -> str:
        return "store" if self.partition < 0 else f"topic partition {self.partition} offset {self.offset}"

    def recomputed(self) -> bytes:
        head = b"\n".join((_RECIPE, self.seq, self.prev_hash, *self.fields, str(len(self.body)).encode()))
        return hashlib.sha256(head + b"\n" + self.body).hexdigest().encode()

    def same_as(self, other: Link) -> bool:
        return (self.hash == other.hash and self.prev_hash == other.prev_hash and self.fields == other.fields
                and self.body == other.body and self.position == other.position)

    def label(self) -> str:
        f = [x.decode(errors="replace") for x in self.fields]
        return f"event {f[0]} ({f[1]}, stream {f[3]} v{f[4]})"


@dataclass(slots=True)
class Problem:
    position: int
    kind: str  # altered, inserted, deleted, reordered, disagree, missing_on_topic, out_of_order
    where: str
    event_id: str
    detail: str


@dataclass(slots=True)
class Report:
    store_events: int = 0
    topic_records: int = 0
    legacy: int = 0
    repeats: int = 0
    unpublished: int = 0
    problems: list[Problem] = field(default_factory=list)
    topic_seconds: float = 0.0
    sources: list[str] = field(default_factory=list)  # the chain's sources ([]: every record of the topic)
    other_sources: dict[str, int] = field(default_factory=dict)  # records of other chains on the topic, by source

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        out["first"] = out["problems"][0] if self.problems else None
        return out


def store_link(row: asyncpg.Record) -> Link:
    """A store row as a Link (the SQL below already renders each field as its header's text)."""
    return Link(row["log_position"], format_sequence(row["log_position"]).encode(), row["prev_hash"].encode(),
                row["hash"].encode(), tuple(row[i].encode() for i in range(4, 14)), bytes(row["body"]), -1, 0)


_STORE_ROWS = """
select log_position, prev_hash, hash, body, event_id::text, type, source, stream_id, version::text,
       to_char(recorded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), actor, correlation_id::text,
       coalesce(causation_id::text, ''), key
from events where topic = $1 and log_position is not null order by log_position"""


async def read_store(conn: asyncpg.Connection, topic: str) -> tuple[list[Link], dict[str, str]]:
    """Chained rows in chain order, and the legacy rows' hashes by event id."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await conn.fetch(_STORE_ROWS, topic)
        legacy = await conn.fetch("select event_id, hash from events where topic = $1 and log_position is null",
                                  topic)
    return [store_link(r) for r in rows], {str(r["event_id"]): r["hash"] for r in legacy}


def topic_link(headers: Iterable[tuple[str, bytes]], value: bytes | None, partition: int, offset: int) -> Link | None:
    """A chained record (a 20-digit ``ce_sequence`` and a ``ce_hash``) as a Link, else None."""
    h = dict(headers)
    seq = h.get("ce_sequence")
    digest = h.get("ce_hash")
    if seq is None or digest is None or len(seq) != 20 or not seq.isdigit():
        return None
    return Link(int(seq), seq, h.get("ce_prevhash", b""), digest, tuple(h.get(k, b"") for k in _HEADERS),
                value or b"", partition, offset)


async def read_topic(settings: Settings, topic: str, sources: Collection[str] | None = None,
                     others: dict[str, int] | None = None) -> tuple[list[Link], list[tuple[str, str, str]], int]:
    """(chained records, unchained records as (event id, hash, where), records read).

    With ``sources``, only the records of those sources are the chain's (several chains share a topic:
    the county's declarations service and each community site); records from before the chain with a
    relative source (``/hezhang/<service>``) are kept too, to be matched with the store's legacy rows.
    The others are counted per source in ``others``."""
    read, count = await read_chains(settings, topic, {"": sources})
    if others is not None:
        others.update(read[""].others)
    return read[""].links, read[""].unchained, count


@dataclass(slots=True)
class ChainRecords:
    """What one read of a topic found for one chain."""

    links: list[Link] = field(default_factory=list)
    unchained: list[tuple[str, str, str]] = field(default_factory=list)  # (event id, hash, where)
    others: dict[str, int] = field(default_factory=dict)  # records of other sources, by source


async def read_chains(settings: Settings, topic: str, chains: Mapping[str, Collection[str] | None]
                      ) -> tuple[dict[str, ChainRecords], int]:
    """Several chains sharing ``topic`` (name -> its sources; None: every record) in one read of it, as
    ``read_topic`` reads one; and the number of records read."""
    out = {name: ChainRecords() for name in chains}
    every = [out[name] for name, sources in chains.items() if sources is None]
    by_source: dict[bytes, list[ChainRecords]] = {}
    for name, sources in chains.items():
        for one in sources or ():
            by_source.setdefault(one.encode(), []).append(out[name])
    seen: dict[bytes, int] = {}
    targets_of: dict[bytes, list[ChainRecords]] = {}  # a source's chains, worked out on its first record
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    try:
        await consumer.start()
        cluster = await consumer._client.fetch_all_metadata()  # partitions_for_topic sees subscriptions only
        parts = cluster.partitions_for_topic(topic)
        if not parts:
            raise SystemExit(f"topic {topic} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        todo = {tp for tp in tps if ends[tp] > 0}
        count = 0
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000, max_records=10_000)
            for tp, records in batch.items():
                for r in records:
                    if r.offset >= ends[tp]:
                        break
                    count += 1
                    source = next((v for k, v in r.headers if k == "ce_source"), b"")
                    seen[source] = seen.get(source, 0) + 1
                    targets = targets_of.get(source)
                    if targets is None:
                        targets = targets_of[source] = list(out.values()) if source.startswith(b"/hezhang/") \
                            else every + by_source.get(source, [])
                    if not targets:
                        continue
                    link = topic_link(r.headers, r.value, tp.partition, r.offset)
                    if link is None:
                        h = dict(r.headers)
                        unchained = (h.get("ce_id", b"").decode(errors="replace"),
                                     h.get("ce_hash", b"").decode(errors="replace"),
                                     f"topic partition {tp.partition} offset {r.offset}")
                    for target in targets:
                        if link is not None:
                            target.links.append(link)
                        else:
                            target.unchained.append(unchained)
                if records and records[-1].offset >= ends[tp] - 1:
                    todo.discard(tp)
    finally:
        await consumer.stop()
    for name, sources in chains.items():
        if sources is not None:
            mine = {x.encode() for x in sources}
            out[name].others = {s.decode(errors="replace"): n for s, n in seen.items()
                                if s not in mine and not s.startswith(b"/hezhang/")}
    return out, count


def compare(store: list[Link], topic: list[Link], *, legacy_store: dict[str, str] | None = None,
            unchained: Iterable[tuple[str, str, str]] = ()) -> Report:
    """Walk the store's chain and the topic's chain side by side; problems sorted by position."""
    report = Report(store_events=len(store), topic_records=len(topic))
    problems = report.problems
    legacy_store = legacy_store or {}
    for event_id, digest, where in unchained:
        if legacy_store.get(event_id) == digest and digest:
            report.legacy += 1
        else:
            problems.append(Problem(0, "inserted", where, event_id,
                                    "a record without a chain position that matches no legacy event in the store"))

    # Topic: positions rise within each partition; at each position keep the record that links on.
    last_in_partition: dict[int, int] = {}
    at: dict[int, list[Link]] = {}
    for link in topic:  # in partition-offset order as read
        part = link.partition
        if link.position <= last_in_partition.get(part, 0):
            same = [x for x in at.get(link.position, []) if x.same_as(link)]
            if same:  # sent again after a relay crash: the same record, a later offset
                report.repeats += 1
                continue
            problems.append(Problem(link.position, "reordered", link.where, link.event_id,
                                    f"position {link.position} after {last_in_partition[part]} in its partition"))
        last_in_partition[part] = max(link.position, last_in_partition.get(part, 0))
        at.setdefault(link.position, []).append(link)
    store_at = {s.position: s for s in store}
    topic_pos_of_id = {x.fields[0]: p for p, xs in at.items() for x in xs}
    store_pos_of_id = {s.fields[0]: s.position for s in store}
    top = max([*store_at, *at, 0])
    last_on_topic = max([*at, 0])
    last_in_store = max([*store_at, 0])
    prev_store = prev_topic = GENESIS_HASH.encode()
    for p in range(1, top + 1):
        s = store_at.get(p)
        genuine = None
        for t in at.get(p, []):
            sound = t.recomputed() == t.hash and t.prev_hash == prev_topic
            if sound and genuine is None and (s is None or s.fields[0] == t.fields[0] or s.hash == t.hash):
                genuine = t
            elif store_pos_of_id.get(t.fields[0]) == p:
                problems.append(Problem(p, "altered", t.where, t.event_id,
                                        f"{t.label()} on the topic differs from the store"
                                        + ("" if s is None else f" ({_diff(s, t)})")))
            else:
                problems.append(Problem(p, "inserted", t.where, t.event_id,
                                        f"{t.label()} claims position {p} but "
                                        + ("its hash does not recompute" if t.recomputed() != t.hash else
                                           "does not link to the previous record" if t.prev_hash != prev_topic
                                           else "the store holds no such event there")))
        if s is None:
            if genuine is not None and p > last_in_store:
                problems.append(Problem(p, "inserted", genuine.where, genuine.event_id,
                                        f"{genuine.label()} is on the topic beyond the store's last event "
                                        f"{last_in_store}: the store holds no such event there"
                                        " (forged on the topic, or the store's last events deleted)"))
            elif genuine is not None:
                problems.append(Problem(p, "deleted", "store", genuine.event_id,
                                        f"{genuine.label()} is on the topic ({genuine.where}) but not in the store"))
                prev_store = genuine.hash
            elif p <= last_on_topic:
                problems.append(Problem(p, "deleted", "store and topic", "", f"no event at position {p} anywhere"))
            prev_topic = genuine.hash if genuine is not None else prev_topic
            continue
        if genuine is not None and s.prev_hash == prev_store and s.same_as(genuine):
            pass  # the topic's record, recomputed above, is this row byte for byte
        elif s.recomputed() != s.hash or s.prev_hash != prev_store:
            elsewhere = topic_pos_of_id.get(s.fields[0])
            if elsewhere is not None and elsewhere != p:
                problems.append(Problem(p, "reordered", "store", s.event_id,
                                        f"{s.label()} is at position {p} in the store but {elsewhere} on the topic"))
            elif genuine is not None and genuine.fields[0] == s.fields[0]:
                problems.append(Problem(p, "altered", "store", s.event_id, f"{s.label()}: {_diff(genuine, s)}"))
            elif s.recomputed() != s.hash:
                problems.append(Problem(p, "altered", "store", s.event_id, f"{s.label()}: its hash does not recompute"))
            else:
                problems.append(Problem(p, "reordered", "store", s.event_id,
                                        f"{s.label()} does not link to the event before it"))
        elif genuine is None:
            if p <= last_on_topic:
                problems.append(Problem(p, "missing_on_topic", "topic", s.event_id,
                                        f"{s.label()} is in the store but not on the topic"))
            else:
                report.unpublished += 1
        elif genuine.hash != s.hash:
            problems.append(Problem(p, "disagree", "store", s.event_id, f"{s.label()}: {_diff(genuine, s)}"))
        prev_store = s.hash
        prev_topic = genuine.hash if genuine is not None else s.hash
    problems.sort(key=lambda x: (x.position, x.where))
    return report


def _diff(expected: Link, got: Link) -> str:
    names = [n for n, a, b in zip(FIELDS, expected.fields, got.fields, strict=True) if a != b]
    if expected.body != got.body:
        names.append("body")
    if not names:
        return "hash differs"
    shown = [f"{n}: {a.decode(errors='replace')!r} → {b.decode(errors='replace')!r}"
             for n, a, b in zip(FIELDS, expected.fields, got.fields, strict=True) if a != b]
    return f"{', '.join(names)} changed" + (f" ({'; '.join(shown)})" if shown else "") + \
        f" [{expected.where} → {got.where}]"


async def verify(settings: Settings, topic: str, sources: Collection[str] | None = None) -> Report:
    """One chain: the store of ``settings.database_url`` against the records of ``sources`` on ``topic``
    (default: the sources the store's rows carry; every record when the store has none)."""
    return (await verify_all(settings, topic, {"": (settings.database_url, sources)}))[""]


async def verify_all(settings: Settings, topic: str, chains: Mapping[str, tuple[str, Collection[str] | None]]
                     ) -> dict[str, Report]:
    """Several chains sharing ``topic`` (a county's sites on the declarations topic) in one read of it:
    name -> (its store's database URL, its sources or None as in ``verify``)."""
    stores: dict[str, tuple[list[Link], dict[str, str]]] = {}
    wanted: dict[str, Collection[str] | None] = {}
    for name, (dsn, sources) in chains.items():
        conn = await asyncpg.connect(dsn)
        try:
            stores[name] = await read_store(conn, topic)
            if sources is None:
                found = await conn.fetch("select distinct source from events where topic = $1 "
                                         "and source is not null", topic)
                sources = sorted(r["source"] for r in found) or None
        finally:
            await conn.close()
        wanted[name] = sources
    began = time.perf_counter()
    read, count = await read_chains(settings, topic, wanted)
    seconds = time.perf_counter() - began
    reports = {}
    for name, found in read.items():
        store, legacy = stores[name]
        report = reports[name] = compare(store, found.links, legacy_store=legacy, unchained=found.unchained)
        report.topic_records = count - sum(found.others.values())
        report.sources = sorted(wanted[name] or ())
        report.other_sources = found.others
        report.topic_seconds = seconds
    return reports


def render(report: Report) -> str:
    head = (f"{' '.join(report.sources) or 'every source'}: store: {report.store_events:,} chained events; "
            f"topic: {report.topic_records:,} records "
            f"({report.topic_records / max(report.topic_seconds, 1e-9):,.0f}/s); legacy {report.legacy:,}, "
            f"repeats {report.repeats:,}, unpublished {report.unpublished:,}")
    if report.ok:
        return f"OK  {head}"
    first = report.problems[0]
    lines = [f"FAIL  {head}", f"first problem: position {first.position}: {first.kind} ({first.where}): "
                              f"{first.detail}", f"{len(report.problems)} problem(s):"]
    lines += [f"  {p.position}: {p.kind} ({p.where}) {p.detail}" for p in report.problems[:50]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shared.verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("--service", choices=sorted(BY_SERVICE), help="default: SERVICE_NAME")
    parser.add_argument("--database-url", help="the service's event store (default: DATABASE_URL)")
    parser.add_argument("--topic", help="default: the service's topic in TOPIC_NAMESPACE")
    parser.add_argument("--site", help="a community site's chain (its database in --database-url): the records of "
                                       "its source only (docs/sites.md)")
    parser.add_argument("--source", action="append", help="the chain's source (repeatable; default: the store's)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.database_url:
        settings = settings.model_copy(update={"database_url": args.database_url})
    service = SITE_SERVICE if args.site else args.service or settings.service_name
    topic = args.topic or BY_SERVICE[service].name(settings)
    sources = args.source or ([site_source(args.site, settings)] if args.site else None)
    report = asyncio.run(verify(settings, topic, sources))
    print(orjson.dumps(report.as_json()).decode() if args.json else render(report))
    raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
