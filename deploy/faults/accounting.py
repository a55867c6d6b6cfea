"""What the log says about the acknowledged commands: lost, doubled, reordered. Pure.

The log is read in partition-offset order. A record whose event id was seen before is a copy
(a relay re-send, or the fault suite's deliberate duplicates): consumers drop it by event id, so it
is counted apart and never as a doubled command. A command is doubled when two *different* events
carry its item id; reordered when its event does not sit right after its stream's previous version.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LogRecord:
    event_id: str
    stream: str  # (source-qualified) stream id: a stream's events share one key, so one partition
    version: int
    item_id: str | None  # the declaration's item id; None for other events


@dataclass
class Tally:
    acknowledged: int = 0
    lost: int = 0
    doubled: int = 0
    reordered: int = 0
    copies: int = 0  # records repeating an event id already on the log (dropped by every consumer)
    streams_out_of_order: int = 0  # on the whole log, acknowledged or not
    examples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.doubled or self.reordered or self.streams_out_of_order)


def tally(acknowledged: Collection[str], records: Iterable[LogRecord]) -> Tally:
    seen: set[str] = set()
    last: dict[str, int] = {}
    events_of: dict[str, int] = {}  # item id -> distinct events carrying it
    misplaced: set[str] = set()  # item ids whose event broke its stream's order
    bad_streams: set[str] = set()
    copies = 0
    for r in records:
        if r.event_id in seen:
            copies += 1
            continue
        seen.add(r.event_id)
        if r.version != last.get(r.stream, 0) + 1:
            bad_streams.add(r.stream)
            if r.item_id is not None:
                misplaced.add(r.item_id)
        last[r.stream] = max(r.version, last.get(r.stream, 0))
        if r.item_id is not None:
            events_of[r.item_id] = events_of.get(r.item_id, 0) + 1
    lost = [i for i in acknowledged if i not in events_of]
    doubled = [i for i in acknowledged if events_of.get(i, 0) > 1]
    reordered = [i for i in acknowledged if i in misplaced]
    examples = [f"lost {i}" for i in lost[:3]] + [f"doubled {i}" for i in doubled[:3]]
    examples += [f"reordered {i}" for i in reordered[:3]]
    examples += [f"stream out of order {s}" for s in sorted(bad_streams)[:3]]
    return Tally(len(acknowledged), len(lost), len(doubled), len(reordered), copies, len(bad_streams), examples)
