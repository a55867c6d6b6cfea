"""The CloudEvents codec, upcasting and the hash chain, without any I/O."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, ClassVar

import pytest

from shared.envelope import (
    GENESIS_HASH,
    UndecodableRecord,
    canonical,
    chain_hash,
    decode,
    encode_body,
    format_sequence,
    headers,
    link_hash,
    source_for,
)
from shared.events import Event, event, event_class, schema_uri, upcaster
from shared.settings import Settings
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
    assert env.type == "cn.gov.hezhang.points.unittest.PointsNoted.v2"


def test_an_old_version_is_upcast_on_read() -> None:
    env = decode(hs("cn.gov.hezhang.points.unittest.PointsNoted.v1"), None, b'{"points": 3, "who": "x"}')
    assert env.event == PointsNoted(points=3, note="x")


def test_a_record_written_before_the_reverse_dns_names_still_reads() -> None:
    legacy = [(k, v) for k, v in hs("points.unittest.PointsNoted.v1") if k not in ("ce_streamversion",)]
    legacy = [("ce_sequence", b"7"), ("ce_source", b"/hezhang/unittest"), *legacy]
    env = decode(legacy, None, b'{"points": 3, "who": "x"}')
    assert (env.event, env.sequence, env.position) == (PointsNoted(points=3, note="x"), 7, None)
    assert event_class("points.unittest.PointsNoted.v2") is event_class(PointsNoted.type_name()) is PointsNoted


def test_optional_attributes_may_be_absent() -> None:
    bare = [(k, v) for k, v in hs(PointsNoted.type_name()) if k in ("ce_specversion", "ce_id", "ce_source",
                                                                      "ce_type", "ce_time")]
    env = decode(bare, b"k", b'{"points": 1, "note": ""}')
    assert (env.subject, env.sequence, env.position, env.actor) == ("", 0, None, "")


def test_sequence_sorts_as_text_within_its_source() -> None:
    positions = [1, 2, 9, 10, 11, 99, 100, 12345678901]
    assert sorted(format_sequence(p) for p in positions) == [format_sequence(p) for p in positions]
    with_seq = dict(headers(event_id=uuid.uuid4(), source="/t", type_name=PointsNoted.type_name(), stream_id="s",
                            version=3, time=dt.datetime(2026, 11, 30, tzinfo=dt.UTC), actor="a",
                            correlation_id=uuid.uuid4(), causation_id=None, prev_hash=GENESIS_HASH, digest="x",
                            position=42, key="p-1"))
    assert (with_seq["ce_sequence"], with_seq["ce_streamversion"], with_seq["ce_partitionkey"]) == (
        b"00000000000000000042", b"3", b"p-1")
    assert with_seq["ce_dataschema"].decode() == schema_uri(PointsNoted.type_name())
    assert decode(list(with_seq.items()), b"p-1", b'{"points": 1, "note": ""}').position == 42


def test_source_is_an_absolute_uri_naming_the_deployment() -> None:
    source = source_for("review", Settings(deployment="hezhang-prod"))
    assert source == "https://points.hezhang.gov.cn/hezhang-prod/review"


def test_the_chain_recipe_recomputes_with_sha256sum(tmp_path: Any) -> None:
    """The docstring of shared.envelope.canonical, run as a third party would."""
    import subprocess

    body = '{"note":"帮助搬家","points":5}'.encode()
    fields: dict[str, Any] = dict(
        position=12, prev_hash="ab" * 32, event_id=uuid.UUID(int=7), type_name=PointsNoted.type_name(),
        source="https://points.hezhang.gov.cn/local/unittest", subject="item-1", version=1,
        time=dt.datetime(2026, 11, 30, 16, 0, 0, 250, tzinfo=dt.timezone(dt.timedelta(hours=8))),
        actor="recorder-1", correlation_id=uuid.UUID(int=8), causation_id=None, key="p-1", body=body)
    (tmp_path / "body.json").write_bytes(body)
    h = dict(headers(event_id=fields["event_id"], source=fields["source"], type_name=fields["type_name"],
                     stream_id="item-1", version=1, time=fields["time"], actor="recorder-1",
                     correlation_id=fields["correlation_id"], causation_id=None, prev_hash=fields["prev_hash"],
                     digest="", position=12, key="p-1"))
    env = {k.upper(): h.get(f"ce_{k}", b"").decode() for k in (
        "sequence", "prevhash", "id", "type", "source", "subject", "streamversion", "time", "actor",
        "correlationid", "causationid", "partitionkey")}
    script = ('{ printf \'%s\\n\' hezhang-points-chain-v1 "$SEQUENCE" "$PREVHASH" "$ID" "$TYPE" "$SOURCE" '
              '"$SUBJECT" "$STREAMVERSION" "$TIME" "$ACTOR" "$CORRELATIONID" "$CAUSATIONID" "$PARTITIONKEY" '
              '"$(wc -c < body.json)"; cat body.json; } | sha256sum')
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, check=True)
    assert out.stdout.split()[0].decode() == link_hash(**fields)
    assert canonical(**fields).endswith(b"\n" + str(len(body)).encode() + b"\n" + body)


@pytest.mark.parametrize(("hdrs", "body", "reason"), [
    (hs("cn.gov.hezhang.points.unittest.PointsNoted.v3"), b'{"points": 1, "note": ""}',
     "newer than this program knows"),
    (hs("cn.gov.hezhang.points.unittest.Nope.v1"), b"{}", "unknown event type"),
    (hs("org.example.unittest.PointsNoted.v2"), b"{}", "malformed event type"),
    (hs("garbage"), b"{}", "malformed event type"),
    (hs("points.unittest.PointsNoted.v2", ce_streamversion=b"three"), b'{"points": 1, "note": ""}', "malformed"),
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
