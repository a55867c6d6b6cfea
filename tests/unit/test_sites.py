"""Community sites, without I/O: the registry, each site's source, what consumers accept from a site,
what a site's own read models look at, its Kafka ACLs, and the intake guard."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord, TopicPartition

from services.declarations.pipeline import only_this_site
from shared.envelope import GENESIS_HASH, Envelope, deployment_source, site_source, source_for
from shared.errors import Rejected
from shared.events import Event
from shared.events.declarations import CatalogueVersionPublished, CommunityRegistered, SubjectRegistered
from shared.events.review import MonthCertified
from shared.projection import Owners, ProjectionRunner
from shared.settings import Settings
from shared.sites import RegistryError, Site, parse_registry, partition_of, registry, this_site
from shared.topics import DECLARATIONS, REVIEW, Op, Pattern, Resource, acl_bindings

pytestmark = pytest.mark.unit

COUNTY = Settings(deployment="county", sites="hz01=c-hz01, hz02=c-hz02")
AT_HZ01 = COUNTY.model_copy(update={"site": "hz01"})


def registered(subject: str, community: str) -> SubjectRegistered:
    return SubjectRegistered(subject_id=subject, community_id=community, kind="person", name="张三",
                             categories=("resident",), registered_on=dt.date(2026, 10, 1))


def env(event: Event, source: str) -> Envelope:
    return Envelope(uuid.uuid4(), source, event.type_name(), "s", 1, dt.datetime(2026, 11, 1, tzinfo=dt.UTC), "a",
                    str(uuid.uuid4()), None, "k", GENESIS_HASH, "h", event, 1)


def record(topic: str, key: bytes, source: str) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(topic, 0, 0, 0, 0, key, b"{}", None, 0, 0, [("ce_source", source.encode())])


def test_given_a_registry_when_read_then_each_site_has_its_community_and_principal() -> None:
    assert registry(COUNTY) == (Site("hz01", "c-hz01"), Site("hz02", "c-hz02"))
    assert parse_registry("a=c-a\nb=c-b,") == (Site("a", "c-a"), Site("b", "c-b"))
    assert this_site(AT_HZ01) == Site("hz01", "c-hz01") and this_site(COUNTY) is None
    assert Site("hz01", "c-hz01").principal == "site-hz01"


@pytest.mark.parametrize(("text", "words"), [
    ("hz01", "not name=community"),
    ("HZ01=c-hz01", "not name=community"),
    ("hz01=c hz01", "not name=community"),
    ("hz01=c-1,hz01=c-2", "twice"),
    ("hz01=c-1,hz02=c-1", "two sites"),
])
def test_given_a_malformed_registry_then_it_is_refused_with_the_reason(text: str, words: str) -> None:
    with pytest.raises(RegistryError, match=words):
        parse_registry(text)


def test_given_a_site_not_in_the_registry_then_the_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="SITE=hz09 is not in the registry"):
        Settings(sites="hz01=c-hz01", site="hz09")


def test_a_site_writes_as_its_own_source_and_the_county_as_the_deployment() -> None:
    county = "https://points.hezhang.gov.cn/county/declarations"
    assert source_for("declarations", COUNTY) == deployment_source("declarations", AT_HZ01) == county
    assert source_for("declarations", AT_HZ01) == site_source("hz01", COUNTY) == f"{county}/hz01"
    assert source_for("review", AT_HZ01) == "https://points.hezhang.gov.cn/county/review"


def test_given_the_county_then_declarations_are_accepted_from_every_registered_site_about_its_community() -> None:
    owners = Owners(COUNTY)
    topic = DECLARATIONS.name(COUNTY)
    for _ in range(2):  # the second time from the cache of accepted (topic, type, source)
        assert owners.refusal(topic, env(registered("p-1", "c-hz01"), site_source("hz01", COUNTY))) is None
        assert owners.refusal(topic, env(registered("p-2", "c-hz02"), site_source("hz02", COUNTY))) is None
        assert owners.refusal(topic, env(registered("p-3", "c-99"), source_for("declarations", COUNTY))) is None


def test_given_a_site_writing_another_community_then_refused_naming_both() -> None:
    owners = Owners(COUNTY)
    topic = DECLARATIONS.name(COUNTY)
    assert owners.refusal(topic, env(registered("p-1", "c-hz01"), site_source("hz01", COUNTY))) is None
    reason = owners.refusal(topic, env(registered("p-2", "c-hz02"), site_source("hz01", COUNTY)))
    assert reason is not None and "site 'hz01'" in reason and "c-hz01" in reason and "'c-hz02'" in reason
    community = CommunityRegistered(community_id="c-hz02", name="x")
    reason = owners.refusal(topic, env(community, site_source("hz01", COUNTY)))
    assert reason is not None and "'c-hz02'" in reason


def test_given_an_event_without_a_community_from_a_site_then_accepted() -> None:
    catalogue = CatalogueVersionPublished(version=1, effective_month="2026-01", rules=(), published_by="seed")
    assert Owners(COUNTY).refusal(DECLARATIONS.name(COUNTY), env(catalogue, site_source("hz02", COUNTY))) is None


def test_given_an_unregistered_site_then_refused_naming_it() -> None:
    reason = Owners(COUNTY).refusal(DECLARATIONS.name(COUNTY), env(registered("p-1", "c-hz09"),
                                                                   site_source("hz09", COUNTY)))
    assert reason is not None and "site 'hz09'" in reason and "not in the county's registry" in reason


def test_given_a_site_source_on_a_review_event_then_refused() -> None:
    ev = MonthCertified(community_id="c-hz01", month="2026-11", count=0, total=0, digest="0" * 64, signed_by=(),
                        certified_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    reason = Owners(COUNTY).refusal(REVIEW.name(COUNTY), env(ev, site_source("hz01", COUNTY)))
    assert reason is not None and "comes only from https://points.hezhang.gov.cn/county/review" in reason


def test_given_a_site_then_its_read_models_look_only_at_its_own_declarations_and_community() -> None:
    owners = Owners(AT_HZ01)
    decl, review = DECLARATIONS.name(AT_HZ01), REVIEW.name(AT_HZ01)
    assert owners.in_scope(decl, record(decl, b"p-1", site_source("hz01", COUNTY)))
    assert not owners.in_scope(decl, record(decl, b"p-2", site_source("hz02", COUNTY)))
    assert not owners.in_scope(decl, record(decl, b"p-2", source_for("declarations", COUNTY)))
    assert owners.in_scope(review, record(review, b"c-hz01", source_for("review", COUNTY)))
    assert not owners.in_scope(review, record(review, b"c-hz02", source_for("review", COUNTY)))
    assert Owners(COUNTY).in_scope(decl, record(decl, b"p-2", site_source("hz02", COUNTY)))


def test_given_a_site_then_it_reads_the_review_topic_only_in_its_communitys_partition() -> None:
    owners, county = Owners(AT_HZ01), Owners(COUNTY)
    review, decl = REVIEW.name(AT_HZ01), DECLARATIONS.name(AT_HZ01)
    # where the producers put a record keyed c-hz01 (aiokafka's default partitioner, Kafka's murmur2)
    ours = DefaultPartitioner()(b"c-hz01", list(range(12)), list(range(12)))
    assert partition_of(b"c-hz01", 12) == ours
    assert [p for p in range(12) if owners.reads(TopicPartition(review, p), 12)] == [ours]
    assert all(owners.reads(TopicPartition(decl, p), 12) for p in range(12))  # its declarations go everywhere
    assert all(county.reads(TopicPartition(review, p), 12) for p in range(12))


def test_a_site_consumes_in_groups_of_its_own() -> None:
    from services.declarations.ledger import LedgerProjection

    assert ProjectionRunner(None, LedgerProjection(), AT_HZ01).group_id == "points.county.site-hz01.projection.ledger"  # type: ignore[arg-type]
    assert ProjectionRunner(None, LedgerProjection(), COUNTY).group_id == "points.county.projection.ledger"  # type: ignore[arg-type]


def test_a_site_principal_writes_declarations_reads_review_in_its_own_groups_and_nothing_else() -> None:
    mine = {(b.resource, b.name, b.pattern, b.operation) for b in acl_bindings(COUNTY) if b.principal == "site-hz01"}
    assert mine == {
        (Resource.TOPIC, "points.declarations", Pattern.LITERAL, Op.WRITE),
        (Resource.TOPIC, "points.declarations", Pattern.LITERAL, Op.READ),
        (Resource.TOPIC, "points.declarations", Pattern.LITERAL, Op.DESCRIBE),
        (Resource.TOPIC, "points.deadletter", Pattern.LITERAL, Op.WRITE),
        (Resource.TOPIC, "points.deadletter", Pattern.LITERAL, Op.DESCRIBE),
        (Resource.TOPIC, "points.review", Pattern.LITERAL, Op.READ),
        (Resource.TOPIC, "points.review", Pattern.LITERAL, Op.DESCRIBE),
        (Resource.GROUP, "points.county.site-hz01.", Pattern.PREFIXED, Op.READ),
    }
    assert not [b for b in acl_bindings(Settings()) if b.principal.startswith("site-")]


def test_given_a_site_when_a_command_would_write_another_community_then_refused() -> None:
    ok: list[Event] = [registered("p-1", "c-hz01")]
    assert only_this_site(ok, "c-hz01") == ok
    refused = only_this_site([registered("p-1", "c-hz01"), registered("p-2", "c-hz02")], "c-hz01")
    assert isinstance(refused, Rejected) and refused.code == "other_site" and refused.status == 403
    assert "c-hz02" in refused.reason


def test_the_auditor_names_records_on_a_topic_that_no_verified_chain_covers() -> None:
    from shared.audit.cli import unverified_sources
    from shared.verify import Report

    county = Report(sources=["S"], other_sources={"S/hz01": 5, "S/hz09": 1})
    hz01 = Report(sources=["S/hz01"], other_sources={"S": 3, "S/hz09": 1})
    review = Report(sources=["R"])
    assert unverified_sources({"declarations": county, "declarations/hz01": hz01, "review": review}) == {
        "declarations": {"S/hz09": 1}}
    everything = Report(sources=[])  # a store without a source of its own: its chain is every record
    assert unverified_sources({"declarations": everything, "declarations/hz01": hz01}) == {}


async def test_a_site_stores_the_offsets_of_what_it_only_passed_over_with_its_next_write_not_on_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.declarations.ledger import LedgerProjection
    from shared import projection

    # given: a site's ledger runner in its live loop; what it writes is recorded, not sent to a database
    runner = ProjectionRunner(None, LedgerProjection(), AT_HZ01)  # type: ignore[arg-type]
    runner._live = True
    written: list[dict[Any, int]] = []

    async def commit_once(prepared: projection.Prepared, *_: Any) -> tuple[list[Any], list[Any], bool]:
        written.append(dict(prepared[2]))
        return prepared[0], [], False

    monkeypatch.setattr(runner, "_commit_once", commit_once)
    decl = DECLARATIONS.name(AT_HZ01)
    other, own = TopicPartition(decl, 0), TopicPartition(decl, 1)
    # when: two batches hold only other communities' records
    await runner.commit(([], [], {other: 10}))
    await runner.commit(([], [], {other: 20}))
    # then: nothing is written for them yet
    assert written == []
    # when: a batch with something of its own follows, its write carries the passed-over offsets too
    own_event = (record(decl, b"p-1", site_source("hz01", COUNTY)), env(registered("p-1", "c-hz01"),
                                                                       site_source("hz01", COUNTY)))
    await runner.commit(([own_event], [], {own: 5}))
    assert written == [{other: 20, own: 5}]
    # and passed-over records alone are written once they have waited long enough
    monkeypatch.setattr(projection, "PASSED_OVER_STORE_S", 0.0)
    await runner.commit(([], [], {other: 30}))
    assert written[-1] == {other: 30}
    # and outside the live loop (a catch-up, a replay) every batch writes its offsets at once
    runner._live = False
    monkeypatch.setattr(projection, "PASSED_OVER_STORE_S", 60.0)
    await runner.commit(([], [], {other: 40}))
    assert written[-1] == {other: 40}
