"""The runner's memory of each partition's recent event ids (shared/recent.py): a copy within the
window is caught, the memory stays bounded, and it is good only for the offset it was stored at."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from shared.recent import RecentIds

pytestmark = pytest.mark.unit

TP = TopicPartition("points.review", 0)
SOURCE = "/points/review"


def records(ids: list[uuid.UUID], first_offset: int, tp: TopicPartition = TP) -> list[tuple[Any, Any]]:
    return [(SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=first_offset + i),
             SimpleNamespace(source=SOURCE, id=event_id)) for i, event_id in enumerate(ids)]


def committed(recent: RecentIds, batch: list[tuple[Any, Any]], next_offset: int) -> list[tuple[Any, Any]]:
    """The batch through the guard and committed: what it applied."""
    fresh = recent.fresh(batch)
    recent.extend(fresh, {TP: next_offset})
    return fresh.good


def test_given_an_event_published_twice_within_the_window_when_read_then_it_is_applied_once() -> None:
    recent = RecentIds(size=50)
    recent.start([TP], generation=0)
    ids = [uuid.uuid4() for _ in range(200)]
    applied = []
    for start in range(0, 200, 10):  # batches of 10, as the integration test reads them
        applied += committed(recent, records(ids[start:start + 10], start), start + 10)
    copy = committed(recent, records([ids[150]], 200), 201)  # 50 offsets after its first: the window's edge
    assert len(applied) == 200 and copy == []


def test_given_a_copy_in_the_same_batch_when_read_then_only_the_first_is_applied() -> None:
    recent = RecentIds(size=50)
    recent.start([TP], generation=0)
    one, two = uuid.uuid4(), uuid.uuid4()
    fresh = committed(recent, records([one, two, one], 0), 3)
    assert [env.id for _, env in fresh] == [one, two]


def test_given_a_long_stream_when_read_then_fewer_than_twice_the_window_are_held() -> None:
    recent = RecentIds(size=50)
    recent.start([TP], generation=0)
    offset = 0
    for size in (7, 40, 3, 90, 1, 64, 33) * 20:
        committed(recent, records([uuid.uuid4() for _ in range(size)], offset), offset + size)
        offset += size
        assert len(recent.windows[TP].held) < 2 * 50


def test_given_rows_for_the_store_when_a_batch_is_longer_than_the_window_then_only_its_end_is_stored() -> None:
    recent = RecentIds(size=50)
    recent.start([TP], generation=0)
    batch = records([uuid.uuid4() for _ in range(120)], 0)
    rows = recent.rows("ticks", recent.fresh(batch), {TP: 120})
    assert [(r[1], r[2], r[3], r[4], len(r[5])) for r in rows] == [(TP.topic, 0, 120, SOURCE, 50)]


def test_given_a_window_when_another_reader_moved_the_partition_on_then_it_is_not_current() -> None:
    recent = RecentIds(size=50)
    recent.start([TP], generation=3)
    committed(recent, records([uuid.uuid4()], 0), 1)
    assert recent.current(TP, generation=3, stored=1)
    assert not recent.current(TP, generation=3, stored=5)  # someone else committed offsets 1-4
    assert not recent.current(TP, generation=4, stored=1)  # a swap put another build live
    recent.forget([TP])
    assert not recent.current(TP, generation=3, stored=1)


def test_given_an_id_stored_again_by_a_later_batch_when_the_first_leaves_the_window_then_it_is_still_held() -> None:
    recent = RecentIds(size=10)
    recent.start([TP], generation=0)
    again = uuid.uuid4()
    committed(recent, records([again], 0), 1)
    committed(recent, records([uuid.uuid4() for _ in range(14)], 1), 15)  # the first row falls out
    assert committed(recent, records([again], 15), 16) != []  # 15 offsets on: beyond the window, applied
    committed(recent, records([uuid.uuid4() for _ in range(5)], 16), 21)
    assert committed(recent, records([again], 21), 22) == []  # 6 offsets after the second: caught
