"""The CloudEvents codec, upcasting and the hash chain, without any I/O."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, ClassVar

import pytest

from shared.envelope import GENESIS_HASH, UndecodableRecord, chain_hash, decode, encode_body, headers
from shared.events import Event, event, upcaster
from shared.store import verify_chain

pytestmark = pytest.mark.unit


@event
class PointsNoted(Event):
    """v2 split 'who' into actor and note; v1 records on the log must still read."""

    SERVICE: ClassVar[str] = "unittest"
    VERSION: ClassVar[int] = 2
    points: int
    note: str


@upcaster("unittest", "PointsNoted", 1)
def _v1_to_v2(body: dict[str, Any]) -> dict[str, Any]:
    return {"points": body["points"], "note": body.get("who", "")}


def hs(type_name: str, **over: bytes) -> list[tuple[str, bytes]]:
    h = dict(headers(event_id=uuid.uuid4(), source="/t", type_name=type_name, stream_id="s-1", version=3,
                     time=dt.datetime(2026, 11, 30, 16, 0, tzinfo=dt.UTC), actor="recorder-1",
                     correlation_id=uuid.uuid4(), causation_id=uuid.uuid4(), prev_hash=GENESIS_HASH, digest="x"))
    h.update(over)
    return list(h.items())


def test_an_event_round_trips_through_binary_mode() -> None:
    ev = PointsNoted(points=5, note="帮助搬家")
    env = decode(hs(ev.type_name()), b"person-1", encode_body(ev))
    assert env.event == ev
    assert (env.subject, env.sequence, env.actor, env.key) == ("s-1", 3, "recorder-1", "person-1")
    assert env.type == "points.unittest.PointsNoted.v2"


def test_an_old_version_is_upcast_on_read() -> None:
    env = decode(hs("points.unittest.PointsNoted.v1"), None, b'{"points": 3, "who": "x"}')
    assert env.event == PointsNoted(points=3, note="x")


@pytest.mark.parametrize(("hdrs", "body", "reason"), [
    (hs("points.unittest.PointsNoted.v3"), b'{"points": 1, "note": ""}', "newer than this program knows"),
    (hs("points.unittest.Nope.v1"), b"{}", "unknown event type"),
    (hs("garbage"), b"{}", "malformed event type"),
    (hs("points.unittest.PointsNoted.v2", ce_sequence=b"three"), b'{"points": 1, "note": ""}', "malformed"),
    (hs("points.unittest.PointsNoted.v2", ce_time=b"2026-11-30T16:00:00"), b'{"points": 1, "note": ""}',
     "no time zone"),
    (hs("points.unittest.PointsNoted.v2", ce_specversion=b"0.3"), b"{}", "unsupported ce_specversion"),
    (hs("points.unittest.PointsNoted.v2"), b"[1, 2]", "not a JSON object"),
    (hs("points.unittest.PointsNoted.v2"), None, "no body"),
    (hs("points.unittest.PointsNoted.v2"), b'{"points": 1, "note": "", "extra": 1}', "does not match"),
])
def test_bad_records_are_refused_with_a_reason(hdrs: list[tuple[str, bytes]], body: bytes | None,
                                               reason: str) -> None:
    with pytest.raises(UndecodableRecord, match=reason):
        decode(hdrs, None, body)


def test_the_hash_chain_detects_an_edited_event() -> None:
    bodies = [b'{"points": 1}', b'{"points": 2}', b'{"points": 3}']
    rows, prev = [], GENESIS_HASH
    for i, body in enumerate(bodies, start=1):
        digest = chain_hash(prev, "t", "s", i, body)
        rows.append(("s", i, "t", body, prev, digest))
        prev = digest
    assert verify_chain(rows) == []
    tampered = list(rows)
    tampered[1] = ("s", 2, "t", b'{"points": 200}', rows[1][4], rows[1][5])
    assert verify_chain(tampered) == ["s v2: body does not match its hash"]
    assert "version 3 follows 1" in verify_chain([rows[0], rows[2]])[0]
