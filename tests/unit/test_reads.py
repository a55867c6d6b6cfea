"""A projection that names the events it reads passes over the others of its topics undecoded."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition

from services.declarations.certified import CertifiedMonths
from services.ranking.projection import RankingProjection
from shared.envelope import GENESIS_HASH, encode_body, headers, source_for
from shared.events import Event
from shared.events.declarations import ActivityAttendanceRecorded, SubjectRegistered
from shared.events.review import ItemVerified, MonthCertified, PointsAwarded
from shared.projection import Owners, prepare
from shared.settings import Settings
from shared.topics import DECLARATIONS, REVIEW

pytestmark = pytest.mark.unit

COUNTY = Settings(deployment="county", sites="hz01=c-hz01")
AWARD = PointsAwarded(item_id="i-1", community_id="c-hz01", month="2026-11", subject_id="p-1", category="resident",
                      dimension="community_building", rule_code="R01", points=3)
VERIFIED = ItemVerified(item_id="i-1", community_id="c-hz01", month="2026-11")
CERTIFIED = MonthCertified(community_id="c-hz01", month="2026-11", count=1, total=3, digest="d" * 64,
                           certified_at=dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC), signed_by=("sec", "lg"))
REGISTERED = SubjectRegistered(subject_id="p-1", community_id="c-hz01", kind="person", name="张三",
                               categories=("resident",), registered_on=dt.date(2026, 10, 1))


def record(topic: str, event: Event, service: str, offset: int, *, type_name: str | None = None,
           body: bytes | None = None) -> ConsumerRecord[Any, Any]:
    h = headers(event_id=uuid.uuid4(), source=source_for(service, COUNTY), type_name=type_name or event.type_name(),
                stream_id="s", version=1, time=dt.datetime(2026, 11, 30, tzinfo=dt.UTC), actor="a",
                correlation_id=uuid.uuid4(), causation_id=None, prev_hash=GENESIS_HASH, digest="h" * 64, position=1,
                key="c-hz01")
    return ConsumerRecord(topic, 0, offset, 0, 0, b"c-hz01", encode_body(event) if body is None else body, None, 0, 0,
                          h)


def test_given_certified_months_then_awards_and_decisions_are_passed_over_and_the_certification_read() -> None:
    review = REVIEW.name(COUNTY)
    owners = Owners(COUNTY, CertifiedMonths.reads)
    batch = {TopicPartition(review, 0): [record(review, AWARD, "review", 0), record(review, VERIFIED, "review", 1),
                                         record(review, CERTIFIED, "review", 2)]}
    good, dead, offsets = prepare(batch, owners)
    assert [type(env.event) for _, env in good] == [MonthCertified]
    assert dead == [] and offsets == {TopicPartition(review, 0): 3}


def test_given_names_read_then_poison_and_unknown_types_are_still_decoded_and_dead_lettered() -> None:
    review = REVIEW.name(COUNTY)
    owners = Owners(COUNTY, CertifiedMonths.reads)
    batch = {TopicPartition(review, 0): [
        record(review, AWARD, "review", 0, body=b"not json"),  # a current type it does not read: passed over
        record(review, CERTIFIED, "review", 1, body=b"{\"community_id\": 1}"),
        record(review, AWARD, "review", 2, type_name="cn.gov.hezhang.points.review.Forged.v1"),
        record(review, REGISTERED, "declarations", 3),  # another service's event on this topic
    ]}
    good, dead, _ = prepare(batch, owners)
    assert good == []
    assert [r.offset for r, _ in dead] == [1, 2, 3]
    assert "unknown event type" in dead[1][1] and "belongs on" in dead[2][1]


def test_given_the_ranking_then_it_decodes_what_it_ranks_and_passes_over_the_rest() -> None:
    decl, review = DECLARATIONS.name(COUNTY), REVIEW.name(COUNTY)
    attended = ActivityAttendanceRecorded.type_name()
    owners, everything = Owners(COUNTY, RankingProjection.reads), Owners(COUNTY)
    for owners_, expected in ((owners, [SubjectRegistered, PointsAwarded, MonthCertified]),
                              (everything, [SubjectRegistered, ItemVerified, PointsAwarded, MonthCertified])):
        batch = {TopicPartition(decl, 0): [record(decl, REGISTERED, "declarations", 0),
                                           record(decl, REGISTERED, "declarations", 1, type_name=attended, body=b"{}")],
                 TopicPartition(review, 0): [record(review, VERIFIED, "review", 0), record(review, AWARD, "review", 1),
                                             record(review, CERTIFIED, "review", 2)]}
        good, dead, _ = prepare(batch, owners_)
        assert [type(env.event) for _, env in good] == expected
        assert len(dead) == (0 if owners_ is owners else 1)  # the bad attendance body: decoded only without reads
