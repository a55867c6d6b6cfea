"""The whole log as the auditor reads it: every topic of the deployment from offset 0 to its end
(or to given offsets), decoded, each event only from its owning service's source on its own topic.

Nothing here trusts a service's database: the topics are the history. Records that do not decode,
or that claim a type another service owns, are kept aside with the reason (``Log.refused``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.envelope import Envelope, UndecodableRecord, decode
from shared.events import Event
from shared.kafka import consumer_config
from shared.projection import Owners, partitions_of
from shared.settings import Settings
from shared.topics import BY_SERVICE

Progress = Callable[[int, int], None]  # (records read so far, records to read)


@dataclass(frozen=True, slots=True)
class Entry:
    envelope: Envelope
    topic: str
    partition: int
    offset: int

    @property
    def event(self) -> Event:
        return self.envelope.event


@dataclass
class Log:
    entries: list[Entry] = field(default_factory=list)  # per topic, per partition, in offset order
    refused: list[tuple[str, int, int, str]] = field(default_factory=list)  # topic, partition, offset, reason
    ends: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> the offset read up to

    def of(self, *types: type[Event]) -> Iterator[Entry]:
        return (e for e in self.entries if isinstance(e.envelope.event, types))


async def read_log(settings: Settings, services: tuple[str, ...] = tuple(BY_SERVICE), *,
                   stop_at: Mapping[str, int] | None = None, progress: Progress | None = None) -> Log:
    """Read the services' topics. ``stop_at`` ("topic:partition" -> offset) stops a partition there
    instead of at its end: the log as a reader stood at those offsets."""
    owners = Owners(settings)
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    log = Log()
    try:
        await consumer.start()
        tps = await partitions_of(consumer, [BY_SERVICE[s].name(settings) for s in services])
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        if stop_at is not None:
            ends = {tp: min(end, stop_at.get(f"{tp.topic}:{tp.partition}", end)) for tp, end in ends.items()}
        log.ends = {f"{tp.topic}:{tp.partition}": end for tp, end in sorted(ends.items())}
        total, read = sum(ends.values()), 0
        by_tp: dict[TopicPartition, list[Entry]] = {tp: [] for tp in tps}
        todo = {tp for tp in tps if ends[tp] > 0}
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000, max_records=20_000)
            for tp, records in batch.items():
                for r in records:
                    if r.offset >= ends[tp]:
                        todo.discard(tp)
                        break
                    read += 1
                    try:
                        env = decode(r.headers, r.key, r.value)
                    except UndecodableRecord as exc:
                        log.refused.append((tp.topic, tp.partition, r.offset, str(exc)))
                        continue
                    reason = owners.refusal(tp.topic, env)
                    if reason is not None:
                        log.refused.append((tp.topic, tp.partition, r.offset, reason))
                        continue
                    by_tp[tp].append(Entry(env, tp.topic, tp.partition, r.offset))
                if records and records[-1].offset >= ends[tp] - 1:
                    todo.discard(tp)
            if progress is not None:
                progress(read, total)
        for tp in sorted(by_tp):
            log.entries += by_tp[tp]
    finally:
        await consumer.stop()
    return log
