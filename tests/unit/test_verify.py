"""The verifier's comparison of store and topic, without I/O: what counts as a problem and what does not."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

from shared.envelope import GENESIS_HASH, format_sequence, link_hash
from shared.verify import Link, compare

pytestmark = pytest.mark.unit

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def a_log(n: int) -> list[Link]:
    """n chained events as the store holds them."""
    out, prev = [], GENESIS_HASH
    for p in range(1, n + 1):
        event_id, body = uuid.UUID(int=p), f'{{"n":{p}}}'.encode()
        digest = link_hash(position=p, prev_hash=prev, event_id=event_id, type_name="t", source="s",
                           subject=f"s-{p % 2}", version=p, time=T0, actor="a", correlation_id=event_id,
                           causation_id=None, key=f"s-{p % 2}", body=body)
        fields = (str(event_id), "t", "s", f"s-{p % 2}", str(p), "2026-11-01T00:00:00.000000Z", "a", str(event_id),
                  "", f"s-{p % 2}")
        out.append(Link(p, format_sequence(p).encode(), prev.encode(), digest.encode(),
                        tuple(f.encode() for f in fields), body, -1, 0))
        prev = digest
    return out


def on_topic(store: list[Link], partitions: int = 2) -> list[Link]:
    """The same events on the topic, each partition in offset order, partitions read one after another."""
    out = []
    for part in range(partitions):
        mine = [s for s in store if s.position % partitions == part]
        out += [dataclasses.replace(s, partition=part, offset=i) for i, s in enumerate(mine)]
    return out


def test_store_and_topic_agreeing_verify() -> None:
    store = a_log(6)
    assert compare(store, on_topic(store)).ok


def test_a_record_the_relay_sent_twice_is_a_repeat_not_a_problem() -> None:
    store = a_log(6)
    topic = on_topic(store)
    topic.append(dataclasses.replace(topic[1], offset=99))
    report = compare(store, topic)
    assert report.ok and report.repeats == 1


def test_rows_not_yet_published_are_unpublished_not_missing() -> None:
    store = a_log(6)
    report = compare(store, on_topic(store[:4]))
    assert report.ok and report.unpublished == 2


def test_a_row_missing_from_the_topic_between_published_ones_is_named() -> None:
    store = a_log(6)
    report = compare(store, on_topic([s for s in store if s.position != 3]))
    assert (report.problems[0].position, report.problems[0].kind) == (3, "missing_on_topic")


def test_records_out_of_order_within_a_partition_are_named() -> None:
    store = a_log(6)
    topic = on_topic(store, partitions=1)
    topic[2], topic[3] = dataclasses.replace(topic[3], offset=2), dataclasses.replace(topic[2], offset=3)
    first = compare(store, topic).problems[0]
    assert (first.position, first.kind, first.where) == (3, "reordered", "topic partition 0 offset 3")
