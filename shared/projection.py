"""The projection runner: Kafka -> a read model in the service's PostgreSQL, effect exactly once.

- Offsets live in ``projection_offsets``, written in the same transaction as the rows they
  produced, and only move forward (the upsert keeps the greater offset).
- Nothing from a partition is applied before it sits at its stored offset. aiokafka hands out
  records of a newly assigned partition as soon as it has a position, even while the rebalance
  listener is still awaiting; it returns nothing of a paused partition and drops what it fetched
  before a ``seek``. So the listener pauses the partitions before its first await, seeks them to
  the stored offsets, then resumes them; records of a partition not yet seeked, or below its
  seek position, are discarded; and each transaction skips records below the offset stored in
  Postgres, read under row lock (a partition moving between two members of the group).
- Dedup by event id is the second guard, against a relay that published an event twice (crash
  between send and mark): the copy lands on the same partition (same key) a few relay batches
  later, and is applied once if within ``dedup_window`` offsets of the first (``shared/recent.py``:
  the ids held in memory by the partition's reader, stored one row per batch).
- Transient database errors (deadlock, serialization failure, lock timeout, connection trouble)
  roll the whole transaction back and retry it: never dead-lettered, never marked seen.
- A record that cannot be decoded or applied, or whose event type is not its owning service's
  (wrong ``source`` or wrong topic), goes to the dead-letter topic with its reason.
- Replays (rebuild, "as of" a time) run into a scratch schema and go live only by an explicit
  swap (shared/replay.py), which takes the lock every runner transaction takes (shared): a
  runner that sees a swapped generation seeks again to the swapped-in offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from shared import recent
from shared.envelope import Envelope, UndecodableRecord, decode, deployment_source, legacy_source, site_source
from shared.events import Event, UnknownEventType, catalogue, event_class, load_catalogue
from shared.kafka import consumer_config, producer_config
from shared.logging import get_logger
from shared.recent import RecentIds
from shared.settings import Settings
from shared.sites import SITE_SERVICE, Site, group_prefix, partition_of, registry, this_site
from shared.topics import BY_SERVICE, DEAD_LETTER, REVIEW, Topic

if TYPE_CHECKING:
    from shared.replay import Replay

log = get_logger("projection")

SCHEMA = """
create table if not exists projection_offsets (
    projection  text not null,
    topic       text not null,
    partition   integer not null,
    next_offset bigint not null,
    primary key (projection, topic, partition)
);
-- bumped by every swap: a runner seeing another generation seeks again to the stored offsets
create table if not exists projection_live (
    projection text primary key,
    generation bigint not null
);
drop table if exists projection_seen;  -- the unbounded dedup store it replaces
"""

# pg_advisory_xact_lock(LOCK_CLASS, hashtext(projection)): shared by every runner commit, exclusive by a swap
LOCK_CLASS = 7421
DEDUP_WINDOW = 10_000  # offsets per partition: a relay re-sends within a batch or two (relay_batch_size 2000)
RETRIES = 8
REPORT_OFFSETS_S = 5.0  # how often the runner commits its stored offsets to the consumer group (lag tools)
# On a site, a batch of records it only passes over (other communities') has nothing to write but its
# offsets; they are stored with the next batch or within this long. Unstored, such records are read and
# passed over again after a restart: nothing is applied twice, a site's database is spared a transaction
# per batch of the whole county's traffic.
PASSED_OVER_STORE_S = 1.0
SETTLE_EVERY_S = 30.0  # a projection that puts work off settles at least this often while records keep coming
# ... but never spends more than a share of its time settling then: a settle that took d seconds is
# followed by the next one SETTLE_SPACING * d later at the soonest (at least SETTLE_EVERY_S). The log gone
# quiet (a fetch that brings nothing, every partition read at its high watermark) settles at once. A
# batch that reaches the end of the log as last fetched does not: a relay publishing a burst (a month's
# certifications) is caught up with again and again, and in a full-size county run one county ranking
# between two certifications (7.7 s on the loaded machine) left the runner several certifications behind.
# A fetch that brings nothing while the runner is still behind (its fetcher slow on a saturated machine)
# counts as a batch behind.
SETTLE_SPACING = 4.0
# A settle put off by the projection (``Projection.settle`` returned False) is asked again with the next
# batch, or on the next fetch that brings nothing; after this many such quiet fetches in a row (each
# waits up to 200 ms) it is asked without ``more_coming`` and must settle.
QUIET_PUT_OFFS = 25
# SQLSTATE classes and codes of errors that are not the record's fault: retry the transaction.
TRANSIENT_SQLSTATES = ("40", "08", "53", "57P", "55P03", "57014")


def is_transient(exc: BaseException) -> bool:
    """Deadlock, serialization failure, lock or statement timeout, connection trouble, a server
    shutting down, a cached plan invalidated by a swap: the same transaction will succeed later."""
    if isinstance(exc, asyncpg.InterfaceError | OSError | asyncio.TimeoutError | asyncpg.InvalidCachedStatementError):
        return True
    state = getattr(exc, "sqlstate", None)
    return isinstance(exc, asyncpg.PostgresError) and bool(state) and str(state).startswith(TRANSIENT_SQLSTATES)


class Reseek(Exception):
    """A swap put another read model live: its offsets, not the consumer's positions, are the truth."""


class Projection(ABC):
    """A read model. ``apply`` gets events in log order per partition and must not read the clock."""

    name: str
    topics: tuple[Topic, ...]
    tables: tuple[str, ...]  # what a replay builds and a swap puts live
    queues: tuple[str, ...] = ()  # those of ``tables`` the service takes rows off as it works (not pure history)
    schema: str  # DDL, idempotent, unqualified names (a replay runs it in a scratch schema)
    # True when the rows written for one partition's events are never written for another's
    # (every key's rows stay with its partition): then partitions can be rebuilt in parallel.
    partition_local: bool = False
    dedup_window: int = DEDUP_WINDOW

    @abstractmethod
    async def apply(self, conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None: ...

    # A projection may put off costly work while the log is ahead of it (``settles``): the runner
    # then calls ``settle`` in a transaction of its own once the log has gone quiet (a fetch brought
    # nothing and its partitions are at their high watermarks), in the transaction of a batch at least
    # every ``SETTLE_EVERY_S`` while records keep coming (spaced by the last settle's duration,
    # ``SETTLE_SPACING``), and at the end of a catch-up or replay. Like ``apply`` it must not read the
    # clock; what it writes is the same whichever batch it ran with. While ``more_coming`` it may put
    # the work off once more by returning False (the runner asks again later); without, it must
    # settle: at the end of a catch-up or replay, and once the log has stayed quiet through
    # ``QUIET_PUT_OFFS`` asks.
    settles: bool = False
    # The event types ``apply`` looks at (subclasses included), when it ignores the rest: records of the
    # other types of its topics' services (in their current version) are passed over by their ``ce_type``
    # header, never decoded (ranking passes over every verification decision, a site's certified months
    # every award). None: every record is decoded. Unknown, malformed and older types are decoded as before.
    reads: tuple[type[Event], ...] | None = None

    async def settle(self, conn: asyncpg.Connection, *, more_coming: bool) -> bool:
        return True


async def migrate(conn: asyncpg.Connection, projection: Projection) -> None:
    await conn.execute(SCHEMA)
    await conn.execute(recent.SCHEMA)
    await conn.execute(projection.schema)


async def table_digest(conn: asyncpg.Connection, table: str, order_by: str) -> str:
    """md5 over every row in a fixed order: equal digests = byte-identical tables."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        f"select md5(coalesce(string_agg(t::text, E'\\n' order by {order_by}), '')) from {table} t"
    )


class Owners:
    """Consumers accept an event type only from its owning service's source on its owning topic.

    Declarations events come from the deployment's declarations service or from a registered
    community site (``SITES``, see shared/sites.py); a site's events only about its own community.
    On a site (``SITE``), ``in_scope`` also says which records concern the site at all: its own
    declarations and its own community's review stream. Records outside it are passed over before
    decoding (never applied, never dead-lettered): a site's read models hold its own community."""

    def __init__(self, settings: Settings, reads: tuple[type[Event], ...] | None = None) -> None:
        self.settings = settings
        self._unread = _unread_types(settings, reads)  # topic -> ce_type values passed over
        # (topic, type, source) -> None (accepted) or the site whose community every such event must name
        self._accepted: dict[tuple[str, str, str], Site | None] = {}
        self._sites = {site_source(s.name, settings): s for s in registry(settings)}
        site = this_site(settings)
        self._scope: dict[str, tuple[int, bytes]] = {}  # topic -> (0: by ce_source, 1: by key, value)
        if site is not None:
            self._scope[BY_SERVICE[SITE_SERVICE].name(settings)] = (0, site_source(site.name, settings).encode())
            self._scope[REVIEW.name(settings)] = (1, site.community_id.encode())  # keyed by community id

    def reads(self, tp: TopicPartition, partitions: int) -> bool:
        """Whether a record of this partition can be in scope at all. On a site, a topic keyed by
        community id is read only in the partition its community's key goes to (the producers'
        default partitioner, Kafka's murmur2), so a site never fetches the rest of the county's
        review stream. The partition count of a topic keyed this way is never changed (that would
        move a community to another partition and break its order)."""
        rule = self._scope.get(tp.topic)
        if rule is None or rule[0] != 1:
            return True
        return tp.partition == partition_of(rule[1], partitions)

    def in_scope(self, topic: str, record: ConsumerRecord[Any, Any]) -> bool:
        rule = self._scope.get(topic)
        if rule is not None:
            kind, value = rule
            if kind == 1:
                if record.key != value:
                    return False
            elif ("ce_source", value) not in (record.headers or ()):  # in C: most of what a site reads is not its own
                return False
        unread = self._unread.get(topic)
        if unread:
            for name, value in record.headers or ():
                if name == "ce_type":
                    return value not in unread
        return True

    def refusal(self, topic: str, env: Envelope) -> str | None:
        key = (topic, env.type, env.source)
        if key in self._accepted:
            site = self._accepted[key]
        else:
            reason, site = self._check(topic, env)
            if reason is not None:
                return reason
            if len(self._accepted) < 4096:  # a handful in practice; never a store a forger can grow
                self._accepted[key] = site
        if site is not None:
            community = getattr(env.event, "community_id", site.community_id)
            if community != site.community_id:
                return (f"{env.type} from site {site.name!r}: a site writes only its own community's events "
                        f"({site.community_id}), not community {community!r}")
        return None

    def _check(self, topic: str, env: Envelope) -> tuple[str | None, Site | None]:
        try:
            service = event_class(env.type).SERVICE
        except UnknownEventType as exc:
            return str(exc), None
        owning = BY_SERVICE.get(service)
        if owning is None:
            return f"{env.type}: service {service!r} has no topic of its own", None
        if owning.name(self.settings) != topic:
            return f"{env.type} belongs on {owning.name(self.settings)} ({service}'s topic), not on {topic}", None
        own = deployment_source(service, self.settings)
        if env.source in (own, legacy_source(service)):  # the second: records before issue 9
            return None, None
        if service == SITE_SERVICE:
            site = self._sites.get(env.source)
            if site is not None:
                return None, site
            if env.source.startswith(own + "/"):
                return (f"{env.type} comes from site {env.source[len(own) + 1:]!r}, which is not in the county's "
                        "registry of sites (SITES)"), None
            return (f"{env.type} comes only from {own} or a registered site ({own}/<site>), "
                    f"not from {env.source!r}"), None
        return f"{env.type} comes only from {own}, not from {env.source!r}", None


def _unread_types(settings: Settings, reads: tuple[type[Event], ...] | None) -> dict[str, frozenset[bytes]]:
    """Per topic, the current type names of its service's events that are not ``reads`` (none if None)."""
    if reads is None:
        return {}
    load_catalogue()
    unread: dict[str, set[bytes]] = {}
    for cls in catalogue():
        if cls.SERVICE in BY_SERVICE and not issubclass(cls, reads):
            unread.setdefault(BY_SERVICE[cls.SERVICE].name(settings), set()).add(cls.type_name().encode())
    return {topic: frozenset(names) for topic, names in unread.items()}


Batch = dict[TopicPartition, list[ConsumerRecord[Any, Any]]]
Prepared = tuple[
    list[tuple[ConsumerRecord[Any, Any], Envelope]],
    list[tuple[ConsumerRecord[Any, Any], str]],
    dict[TopicPartition, int],
]


def prepare(batch: Batch, owners: Owners) -> Prepared:
    """Decode a batch (CPU only): the good envelopes, the dead records with reasons, next offsets."""
    good: list[tuple[ConsumerRecord[Any, Any], Envelope]] = []
    dead: list[tuple[ConsumerRecord[Any, Any], str]] = []
    offsets: dict[TopicPartition, int] = {}
    in_scope = owners.in_scope
    for tp, records in batch.items():
        for record in records:
            offsets[tp] = record.offset + 1
            if not in_scope(tp.topic, record):
                continue
            try:
                env = decode(record.headers, record.key, record.value)
            except UndecodableRecord as exc:
                dead.append((record, str(exc)))
            else:
                refusal = owners.refusal(tp.topic, env)
                if refusal is None:
                    good.append((record, env))
                else:
                    dead.append((record, f"wrong source: {refusal}"))
    return good, dead, offsets


async def prepare_cooperatively(batch: Batch, owners: Owners, chunk: int = 250) -> Prepared:
    """``prepare`` in slices, yielding to the event loop between them so the previous batch's
    SQL round trips keep moving while this one is decoded."""
    out: Prepared = ([], [], {})
    for tp, records in batch.items():
        for i in range(0, len(records), chunk):
            good, dead, offsets = prepare({tp: records[i:i + chunk]}, owners)
            out[0].extend(good)
            out[1].extend(dead)
            out[2].update(offsets)
            await asyncio.sleep(0)
    return out


async def fetch_batch(consumer: AIOKafkaConsumer, *partitions: TopicPartition, max_records: int = 5000,
                      wait_ms: int = 200, linger_s: float = 0.02) -> Batch:
    """One getmany returns only what is already fetched (often a few hundred records): keep
    collecting for a moment so one Postgres transaction covers thousands of events."""
    batch: Batch = await consumer.getmany(*partitions, timeout_ms=wait_ms, max_records=max_records)
    total = sum(len(v) for v in batch.values())
    deadline = asyncio.get_running_loop().time() + linger_s
    while batch and total < max_records and asyncio.get_running_loop().time() < deadline:
        more = await consumer.getmany(*partitions, timeout_ms=5, max_records=max_records - total)
        if not more:
            break
        for tp, records in more.items():
            batch.setdefault(tp, []).extend(records)
            total += len(records)
    return batch


def tune_gc() -> None:
    """Replaying allocates millions of short-lived objects; CPython's default GC thresholds spend
    a third of the decoding time collecting them. Fewer, larger young collections instead. A
    service calls it once started: a full collection rescanning the app's start-up objects stalls
    every request in flight (the leaderboard's p99)."""
    if gc.get_threshold()[0] < 50_000:
        gc.set_threshold(50_000, 50, 1000)
        gc.freeze()  # what exists at start-up (modules, catalogue) is never garbage: stop rescanning it


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """A replay allocates millions of objects that live for a batch or two and form almost no
    reference cycles (a few hundred per 200,000 events, measured); the cyclic GC would scan the
    live batches again and again. Pause it for the replay and collect once at the end."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.collect(0)  # the automatic collections were off, so everything made since is still young


def _record_time(record: ConsumerRecord[Any, Any]) -> dt.datetime | None:
    for k, v in record.headers or ():
        if k == "ce_time":
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                return dt.datetime.fromisoformat(v.decode())
    return None




class ProjectionRunner:
    def __init__(self, pool: asyncpg.Pool, projection: Projection, settings: Settings) -> None:
        self.pool = pool
        self.projection = projection
        self.settings = settings
        self.topic_names = [t.name(settings) for t in projection.topics]
        # The deployment (its database) is in the group id, and the site on a site's machine: two
        # installations (or a site and the county) sharing a topic namespace never split the partitions.
        self.group_id = f"{group_prefix(settings)}projection.{projection.name}"
        self.owners = Owners(settings, projection.reads)
        self.consumer: AIOKafkaConsumer | None = None
        self.dead_letter_producer: AIOKafkaProducer | None = None
        self.applied = 0
        self.dead_lettered = 0
        self.fetched = 0  # records handed to the runner by the consumer
        self.discarded = 0  # of those, below the partition's stored offset (already applied): never applied
        self.retried = 0  # transactions rolled back by a transient error and run again
        self.batch_records = settings.projection_batch_records  # at most per transaction (a replay takes more)
        self._unsettled = projection.settles  # applied since it last settled (or before a restart)
        self._settled_at = 0.0
        self._settle_took = 0.0  # seconds the last transaction that settled took
        self._quiet_put_offs = 0  # settles the projection put off in a row on a quiet log
        self.ready = asyncio.Event()
        self.positions: dict[TopicPartition, int] = {}  # partitions seeked to their stored offset, next offset
        # Next offsets as stored in Postgres, also committed to the consumer group now and then so that lag
        # tools (KEDA's Kafka scaler, kafka-consumer-groups.sh) see them; never read back (Postgres is the truth).
        self.stored: dict[TopicPartition, int] = {}
        self.reported: dict[TopicPartition, int] = {}
        self.generation = 0
        self._lock = (LOCK_CLASS, projection.name)
        self._pending: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._live = False  # in run(): batches only passed over may store their offsets later
        self._passed_over: dict[TopicPartition, int] = {}  # their next offsets, not stored yet
        self._passed_over_since = 0.0
        self.recent = RecentIds(projection.dedup_window)  # the second guard (shared/recent.py)
        # A replay into a scratch schema has one writer per partition and starts empty: no locks, no
        # offset checks, its windows never read back; it stores the ids within the window of these
        # end offsets, for the live runner a swap hands it to (see catch_up(fresh=True)).
        self._replay_ends: dict[TopicPartition, int] | None = None

    # ---- offsets -------------------------------------------------------------------------
    async def stored_offsets(self) -> dict[TopicPartition, int]:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            self.generation = await conn.fetchval(
                "select coalesce((select generation from projection_live where projection = $1), 0)",
                self.projection.name)
            rows = await conn.fetch(
                "select topic, partition, next_offset from projection_offsets where projection = $1",
                self.projection.name)
        return {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def seek_to_stored(self, consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition]) -> None:
        stored = await self.stored_offsets()
        for tp in partitions:
            if tp in stored:
                consumer.seek(tp, stored[tp])
            else:
                await consumer.seek_to_beginning(tp)
            self.positions[tp] = self.stored[tp] = stored.get(tp, 0)

    def admit(self, batch: Batch) -> Batch:
        """Only records of a partition seeked to its stored offset, from that offset on."""
        out: Batch = {}
        for tp, records in batch.items():
            self.fetched += len(records)
            position = self.positions.get(tp)
            if position is None:
                self.discarded += len(records)
                continue
            keep = [r for r in records if r.offset >= position] if records[0].offset < position else records
            self.discarded += len(records) - len(keep)
            if keep:
                out[tp] = keep
                self.positions[tp] = keep[-1].offset + 1
        return out

    async def lag(self) -> int:
        consumer = self.consumer
        if consumer is None:
            return -1
        total = 0
        for tp in reading(consumer):
            high = consumer.highwater(tp)
            if high is not None:
                total += max(0, high - await consumer.position(tp))
        return total

    def read_of(self, partitions: Iterable[TopicPartition], count: Callable[[str], int]) -> list[TopicPartition]:
        """The partitions this runner reads of those given (``Owners.reads``); ``count`` gives a
        topic's number of partitions."""
        return [tp for tp in partitions if self.owners.reads(tp, count(tp.topic))]

    # ---- one batch -----------------------------------------------------------------------
    async def process(self, batch: Batch, *, dead_letter: bool = True) -> None:
        await self.commit(prepare(batch, self.owners), dead_letter=dead_letter)

    async def process_pipelined(self, batch: Batch, *, dead_letter: bool = True, settle: bool = False) -> None:
        """Decode this batch while the previous one is still being written (order is kept:
        commits run one after another). Raises what the previous commit raised, and then this
        batch is not committed."""
        prepared = await prepare_cooperatively(batch, self.owners)
        await self.flush()
        self._pending = asyncio.create_task(self.commit(prepared, dead_letter=dead_letter, settle=settle,
                                                        more_coming=True))

    def settle_due(self, caught_up: bool, *, fetched: bool = True) -> bool:
        """Settle now: the log went quiet (a fetch brought nothing, ``fetched`` False, and every partition
        is at its high watermark), or settling is overdue while records keep coming (``SETTLE_EVERY_S``,
        spaced by the last settle's duration, ``SETTLE_SPACING``). A batch that merely reached the end of
        the log as last fetched does not settle: a relay publishing a burst is caught up with again and
        again, and each settle would hold the runner up while the rest of the burst waits."""
        if not self.projection.settles:
            return False
        if caught_up and not fetched:
            return True
        since = asyncio.get_running_loop().time() - self._settled_at
        return since > max(SETTLE_EVERY_S, SETTLE_SPACING * self._settle_took)

    def caught_up(self, consumer: AIOKafkaConsumer) -> bool:
        """Every partition read is at its high watermark as of its last fetch. (A batch that is not
        full says little: a fetch returns at most a megabyte per partition, and a certification's
        awards are all on its community's partition.)"""
        for tp in reading(consumer):
            high = consumer.highwater(tp)
            if high is not None and self.positions.get(tp, 0) < high:
                return False
        return True

    async def settle_now(self, *, quiet: bool = False) -> None:
        """Settle in a transaction of its own, if anything was applied since the last time. ``quiet``:
        the live log went quiet for a moment; the projection may put it off ``QUIET_PUT_OFFS`` times."""
        await self.flush()
        if self._unsettled:
            more_coming = quiet and self._quiet_put_offs < QUIET_PUT_OFFS
            await self.commit(([], [], {}), settle=True, more_coming=more_coming)
            if self._unsettled and quiet:
                self._quiet_put_offs += 1

    async def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            await pending

    async def commit(self, prepared: Prepared, *, dead_letter: bool = True, settle: bool = False,
                     more_coming: bool = False) -> None:
        """One transaction: rows, offsets, dedup ids; retried whole on a transient error."""
        good, dead, offsets = prepared
        settle = settle and self.projection.settles and (self._unsettled or bool(good))
        if self._live and not good and not dead and offsets and not settle:  # passed over only (a site): later
            if not self._passed_over:
                self._passed_over_since = asyncio.get_running_loop().time()
            self._passed_over.update(offsets)
            if asyncio.get_running_loop().time() - self._passed_over_since < PASSED_OVER_STORE_S:
                return
        if self._passed_over:
            prepared = (good, dead, {**self._passed_over, **offsets})
            self._passed_over = {}
        started = asyncio.get_running_loop().time()
        for attempt in range(1, RETRIES + 1):
            try:
                fresh, dead, settled = await self._commit_once(prepared, dead_letter, settle, more_coming)
                break
            except Exception as exc:
                if not is_transient(exc) or attempt == RETRIES:
                    raise
                self.retried += 1
                delay = min(0.05 * 2 ** attempt, 3.0)
                log.warning("projection.retry", projection=self.projection.name, attempt=attempt, error=repr(exc),
                            retry_in_s=delay)
                await asyncio.sleep(delay)
        self.recent.extend(fresh, prepared[2])  # only now: a transaction rolled back leaves the windows as stored
        self.stored.update(prepared[2])
        applied = len(fresh)
        self.applied += applied
        if settle:  # settled or put off, the next try is spaced from this one (put off: not overdue at once)
            self._settled_at = asyncio.get_running_loop().time()
            if settled:
                self._unsettled, self._settle_took, self._quiet_put_offs = False, self._settled_at - started, 0
            else:
                self._unsettled = True
        elif applied and self.projection.settles:
            self._unsettled = True
        self.dead_lettered += len(dead)
        for record, reason in dead:
            log.warning("projection.dead_letter", projection=self.projection.name, topic=record.topic,
                        partition=record.partition, offset=record.offset, reason=reason)

    async def _commit_once(self, prepared: Prepared, dead_letter: bool, settle: bool = False, more_coming: bool = False
                           ) -> tuple[recent.Fresh, list[tuple[Any, str]], bool]:
        good, dead, offsets = prepared
        replay = self._replay_ends is not None
        async with self.pool.acquire() as conn, conn.transaction():
            # A read model is rebuildable and its offsets commit with its rows: losing the last
            # transactions in a database crash only means consuming them again.
            if replay:
                await conn.execute("set local synchronous_commit = off")
            else:
                good, dead = await self._live_checks(conn, good, dead, offsets)
            fresh = self.recent.fresh(good)
            await recent.store(conn, self.recent.rows(self.projection.name, fresh, offsets, self._replay_ends))
            dead = list(dead)
            if fresh:
                try:
                    async with conn.transaction():
                        await self.projection.apply(conn, [env for _, env in fresh.good])
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    dead += await self._apply_one_by_one(conn, fresh.good)
            settled = settle and await self.projection.settle(conn, more_coming=more_coming)
            await conn.execute(
                """insert into projection_offsets (projection, topic, partition, next_offset)
                   select $1, t, p, o from unnest($2::text[], $3::int[], $4::bigint[]) as u(t, p, o)
                   on conflict (projection, topic, partition)
                   do update set next_offset = greatest(projection_offsets.next_offset, excluded.next_offset)""",
                self.projection.name, [tp.topic for tp in offsets], [tp.partition for tp in offsets],
                list(offsets.values()),
            )
            if not replay:
                await recent.trim(conn, self.projection.name, offsets, self.recent.size)
            if dead and dead_letter:
                await self._dead_letter(dead)  # before the commit: a crash re-sends, never loses
        return fresh, dead, settled

    async def _apply_one_by_one(self, conn: asyncpg.Connection, fresh: list[tuple[Any, Envelope]]
                                ) -> list[tuple[Any, str]]:
        """Find the culprit(s): apply one at a time, each in its own savepoint."""
        dead = []
        for record, env in fresh:
            try:
                async with conn.transaction():
                    await self.projection.apply(conn, [env])
            except Exception as exc:
                if is_transient(exc):
                    raise
                dead.append((record, f"cannot apply {env.type} {env.id}: {exc!r}"))
        return dead

    async def _live_checks(self, conn: asyncpg.Connection, good: list[tuple[Any, Envelope]],
                           dead: list[tuple[Any, str]], offsets: dict[TopicPartition, int]
                           ) -> tuple[list[tuple[Any, Envelope]], list[tuple[Any, str]]]:
        """Take the swap lock (shared), check the generation, skip what is below the stored offsets."""
        await conn.fetchval("select set_config('synchronous_commit', 'off', true), "
                            "pg_advisory_xact_lock_shared($1, hashtext($2))", *self._lock)
        generation = await conn.fetchval(  # a statement of its own: its snapshot is taken after the lock
            "select coalesce((select generation from projection_live where projection = $1), 0)", self.projection.name)
        if generation != self.generation:
            raise Reseek(f"{self.projection.name}: generation {self.generation} -> {generation}")
        rows = await conn.fetch(
            """select o.topic, o.partition, o.next_offset from projection_offsets o
               join unnest($2::text[], $3::int[]) as u(t, p) on o.topic = u.t and o.partition = u.p
               where o.projection = $1 for update of o""",
            self.projection.name, [tp.topic for tp in offsets], [tp.partition for tp in offsets])
        stored = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
        stale = {tp: stored.get((tp.topic, tp.partition), 0) for tp in offsets}
        stale = {tp: o for tp, o in stale.items() if not self.recent.current(tp, generation, o)}
        if stale:  # another reader wrote these partitions since (or never read here): under their row locks
            await self.recent.load(conn, self.projection.name, generation, stale)
        if not any(stored.get((tp.topic, tp.partition), 0) > 0 for tp in offsets):
            return good, dead

        def new(record: ConsumerRecord[Any, Any]) -> bool:
            return bool(record.offset >= stored.get((record.topic, record.partition), 0))

        kept_good, kept_dead = [g for g in good if new(g[0])], [d for d in dead if new(d[0])]
        self.discarded += len(good) + len(dead) - len(kept_good) - len(kept_dead)
        return kept_good, kept_dead

    async def _dead_letter(self, dead: list[tuple[ConsumerRecord[Any, Any], str]]) -> None:
        if self.dead_letter_producer is None:
            producer = AIOKafkaProducer(**producer_config(self.settings))
            await producer.start()
            self.dead_letter_producer = producer
        topic = DEAD_LETTER.name(self.settings)
        futures = []
        for record, reason in dead:
            headers = [(k, v) for k, v in (record.headers or ()) if isinstance(v, bytes)]
            headers += [
                ("dlq_reason", reason.encode()),
                ("dlq_consumer", self.projection.name.encode()),
                ("dlq_topic", record.topic.encode()),
                ("dlq_partition", str(record.partition).encode()),
                ("dlq_offset", str(record.offset).encode()),
            ]
            futures.append(await self.dead_letter_producer.send(
                topic, value=record.value, key=record.key, headers=headers))
        await asyncio.gather(*futures)

    # ---- live ----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        tune_gc()
        runner = self

        class SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                runner.recent.forget(revoked)  # read again from the store if it comes back
                for tp in revoked:
                    runner.positions.pop(tp, None)
                    runner._passed_over.pop(tp, None)  # whoever gets it next passes them over again
                try:
                    await runner.flush()  # offsets go to Postgres with the rows; nothing else to hand over
                except Reseek:
                    pass  # whatever is assigned next is seeked to the stored offsets anyway
                except Exception as exc:  # the run loop raises it: aiokafka would only log it
                    runner._failure = exc

            async def on_partitions_assigned(self, assigned: Any) -> None:
                consumer.pause(*assigned)  # before the first await: nothing handed out from a wrong offset
                try:
                    await runner.seek_to_stored(consumer, assigned)
                except Exception as exc:  # stay paused; the run loop raises it and the runner restarts
                    runner._failure = exc
                    return
                read = runner.read_of(assigned, lambda topic: len(consumer.partitions_for_topic(topic) or ()))
                consumer.resume(*read)  # the rest stay paused: never fetched (a site's share of the county)
                log.info("projection.assigned", projection=runner.projection.name,
                         partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in read))
                runner.ready.set()

        consumer = AIOKafkaConsumer(**consumer_config(self.settings), group_id=self.group_id)
        consumer.subscribe(self.topic_names, listener=SeekToStored())
        self.consumer = consumer
        self._live = True
        # overdue counts from the start: a first batch behind the log settles no more than any other (a
        # settle between two certifications of a burst ranked the county with the first of them only)
        self._settled_at = asyncio.get_running_loop().time()
        await consumer.start()
        log.info("projection.started", projection=self.projection.name, topics=self.topic_names,
                 group_id=self.group_id)
        try:
            report_at = 0.0
            while not stop.is_set():
                if self._failure is not None:
                    raise self._failure
                if (now := asyncio.get_running_loop().time()) >= report_at:
                    report_at = now + REPORT_OFFSETS_S
                    await self.report_offsets(consumer)
                batch = self.admit(await fetch_batch(consumer, max_records=self.batch_records))
                try:
                    if batch:
                        await self.process_pipelined(batch, settle=self.settle_due(self.caught_up(consumer)))
                    else:
                        await self.flush()
                        if self.settle_due(self.caught_up(consumer), fetched=False):
                            await self.settle_now(quiet=True)
                        if self._passed_over:  # nothing more to read now: store what was passed over
                            await self.commit(([], [], {}))
                except Reseek as exc:
                    log.info("projection.reseek", projection=self.projection.name, reason=str(exc))
                    await self.seek_to_stored(consumer, consumer.assignment())
            await self.flush()
            if self._passed_over:
                await self.commit(([], [], {}))
        finally:
            self._live = False
            self._passed_over = {}
            self.consumer = None
            if self._pending is not None:
                self._pending.cancel()
            self.positions.clear()
            await consumer.stop()
            await self.close()

    async def report_offsets(self, consumer: AIOKafkaConsumer) -> None:
        """Commit the offsets stored in Postgres to the consumer group, for lag tools only: a failure
        (a rebalance under way, the broker away) is logged and the next report tries again."""
        assigned = consumer.assignment()
        due = {tp: o for tp, o in self.stored.items() if tp in assigned and self.reported.get(tp) != o}
        if not due:
            return
        try:
            await consumer.commit(due)
        except KafkaError as exc:
            log.info("projection.offsets_not_reported", projection=self.projection.name, error=repr(exc))
        else:
            self.reported.update(due)

    async def close(self) -> None:
        if self.dead_letter_producer is not None:
            await self.dead_letter_producer.stop()
            self.dead_letter_producer = None

    # ---- catching up (tests, tools) and replays into a scratch schema ---------------------
    async def catch_up(self, *, until: dt.datetime | None = None, share: Collection[TopicPartition] | None = None,
                       fresh: bool = False, stop_at: Mapping[TopicPartition, int] | None = None) -> int:
        """Read every partition (or the ``share`` given) up to its end offset at the start of the
        call; returns events applied. ``fresh``: a replay into an empty scratch schema (the pool's
        search_path), refused anywhere else; ``until`` stops each partition at its first event
        recorded after that time; ``stop_at`` stops each partition at that offset (0 if absent):
        the log as another reader of it stood."""
        if fresh:
            from shared.replay import refuse_live

            async with self.pool.acquire() as conn:
                refuse_live(await conn.fetchval("select current_schema()"), self.projection)
        with gc_paused():
            return await self._catch_up(until, share, fresh, stop_at)

    async def _catch_up(self, until: dt.datetime | None, share: Collection[TopicPartition] | None,
                        fresh: bool, stop_at: Mapping[TopicPartition, int] | None = None) -> int:
        consumer = AIOKafkaConsumer(**consumer_config(self.settings), group_id=None)
        await consumer.start()
        start_applied = self.applied
        try:
            every = await partitions_of(consumer, self.topic_names)
            tps = self.read_of(every, lambda topic: sum(tp.topic == topic for tp in every))
            if share is not None:
                tps = [tp for tp in tps if tp in share]
            consumer.assign(tps)
            end = await consumer.end_offsets(tps)
            if stop_at is not None:
                end = {tp: min(offset, stop_at.get(tp, 0)) for tp, offset in end.items()}
            await self.seek_to_stored(consumer, tps)
            if fresh:
                self._replay_ends = end
                self.recent.start(tps, self.generation)
            remaining = {tp for tp in tps if self.positions[tp] < end[tp]}
            while True:
                while remaining:
                    batch = self.admit(await fetch_batch(consumer, *remaining, wait_ms=500,
                                                          max_records=20_000 if fresh else self.batch_records))
                    todo = _until(batch, end, until, remaining)
                    try:
                        if todo:
                            await self.process_pipelined(todo, dead_letter=not fresh)
                    except Reseek:
                        await self.seek_to_stored(consumer, tps)
                        remaining = {tp for tp in tps if self.positions[tp] < end[tp]}
                try:
                    await self.settle_now()
                    break
                except Reseek:
                    await self.seek_to_stored(consumer, tps)
                    remaining = {tp for tp in tps if self.positions[tp] < end[tp]}
        finally:
            self._replay_ends = None
            await consumer.stop()
            await self.close()
        return self.applied - start_applied


def _until(batch: Batch, end: dict[TopicPartition, int], until: dt.datetime | None,
           remaining: set[TopicPartition]) -> Batch:
    """The records before each partition's end offset (and before ``until``); a partition that got
    there leaves ``remaining``."""
    todo: Batch = {}
    for tp, records in batch.items():
        keep = []
        for record in records:
            if record.offset >= end[tp]:
                break
            when = None if until is None else _record_time(record)
            if until is not None and when is not None and when > until:
                remaining.discard(tp)
                break
            keep.append(record)
        if keep:
            todo[tp] = keep
            if keep[-1].offset + 1 >= end[tp]:
                remaining.discard(tp)
    return todo



def reading(consumer: AIOKafkaConsumer) -> set[TopicPartition]:
    """The partitions assigned and not paused: those the runner reads (a site pauses the rest)."""
    return set(consumer.assignment()) - set(consumer.paused())


async def partitions_of(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[TopicPartition]:
    cluster = await consumer._client.fetch_all_metadata()  # the public partitions_for_topic sees subscriptions only
    out = []
    for topic in topics:
        parts = cluster.partitions_for_topic(topic)
        if not parts:
            raise RuntimeError(f"topic {topic} does not exist (run: python -m shared.topics create)")
        out += [TopicPartition(topic, p) for p in sorted(parts)]
    return out


def load_projection(spec: str) -> Projection:
    """'package.module:ClassName' -> an instance."""
    import importlib

    module_name, _, cls_name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"no projection {spec!r} (expected module:Class): {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Projection)):
        raise ValueError(f"{spec!r} is not a Projection")
    return cls()


async def rebuild(pool: asyncpg.Pool, projection: Projection, settings: Settings, **options: Any) -> Replay:
    """``shared.replay.rebuild``: replay into a scratch schema (kept here for callers of the old name)."""
    from shared import replay

    return await replay.rebuild(pool, projection, settings, **options)


async def main(argv: Sequence[str]) -> None:
    """python -m shared.projection run|rebuild|as-of|swap <module:Class> [ISO time] [--workers N] [--scratch S]"""
    import argparse
    import json
    import os
    import signal

    from shared import replay
    from shared.events import load_catalogue
    from shared.logging import configure_logging
    from shared.settings import get_settings

    parser = argparse.ArgumentParser(
        prog="python -m shared.projection",
        description="Run a projection; replay it into a scratch schema (rebuild, as-of); swap a scratch build live.")
    parser.add_argument("command", choices=("run", "rebuild", "as-of", "swap"))
    parser.add_argument("projection", help="module:Class, e.g. services.declarations.ledger:LedgerProjection")
    parser.add_argument("time", nargs="?", type=dt.datetime.fromisoformat,
                        help="as-of: replay up to this ISO time (with its time zone)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="rebuild/as-of: processes sharing the partitions (default: one per core)")
    parser.add_argument("--scratch", help="rebuild/as-of: the scratch schema to build (replay_<name>, or "
                        "replay_<name>_as_of); swap: the one to put live. Never the live schema.")
    args = parser.parse_args(argv)
    if args.command == "as-of" and (args.time is None or args.time.tzinfo is None):
        parser.error("as-of needs an ISO time with its time zone, e.g. 2026-11-30T23:59:59+08:00")
    if args.command != "as-of" and args.time is not None:
        parser.error(f"{args.command} takes no time (as-of does)")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    load_catalogue()
    settings = get_settings()
    try:
        projection = load_projection(args.projection)
    except ValueError as exc:
        parser.error(str(exc))
    configure_logging(f"{settings.service_name}-projection-{projection.name}")
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    try:
        async with pool.acquire() as conn:
            await migrate(conn, projection)
        if args.command == "run":
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await ProjectionRunner(pool, projection, settings).run(stop)
            return
        try:
            if args.command == "swap":
                print(json.dumps(await replay.swap(pool, projection, args.scratch), indent=2))
            else:
                built = await replay.rebuild(pool, projection, settings, until=args.time, workers=args.workers,
                                             into=args.scratch)
                print(json.dumps(built.as_dict(), indent=2))
        except replay.LiveTablesRefused as exc:
            parser.exit(2, f"python -m shared.projection: {exc}\n")
    finally:
        await pool.close()


if __name__ == "__main__":
    import sys

    from shared import projection as this  # not __main__: worker processes must find the same classes

    uvloop.run(this.main(sys.argv[1:]))  # the loop the services run on (uvicorn with uvloop)
