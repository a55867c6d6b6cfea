"""Three community sites on this machine, each with its own database, credential, source and chain,
feed one county broker; the review service (the county) reads them all.

One site's link is cut (its relay, a process of its own, is stopped) while every site keeps taking
declarations; when it is restored the site catches up. Then: every event is on the topic exactly
once, each stream's versions in order, each site's chain verifies on its own, review holds every
site's items; an unregistered site's record and a site's record about another community are
dead-lettered with their reasons, and a site refuses a command about another community.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from deploy import credentials
from deploy.sites import admit, site_settings, with_sites
from shared.auth import Role
from shared.envelope import encode_body, headers, site_source
from shared.events.declarations import SubjectRegistered
from shared.kafka import client_config, consumer_config
from shared.projection import partitions_of
from shared.settings import Settings
from shared.sites import Site
from shared.topics import DEAD_LETTER, DECLARATIONS
from shared.verify import verify, verify_all
from tests.integration.declarations.harness import ADMIN, NOW, SUBJECTS, _renamed, register_roster, tok
from tests.support.services import running_relay, running_service, running_site
from tests.support.settings import create_database

pytestmark = pytest.mark.integration

SITES = (Site("hz01", "c-hz01"), Site("hz02", "c-hz02"), Site("hz03", "c-hz03"))
CUT = SITES[1]
BEFORE, DURING, AFTER = 30, 50, 20  # declarations per site before, during and after the cut
MONTH = "2026-11"
CUT_S = 5.0  # at least this long without a link


def people(community: str) -> list[str]:
    return [(s if community == "c-hz01" else _renamed(s, community))["subject_id"] for s in SUBJECTS]


async def declare(http: httpx.AsyncClient, site: Site, n: int, phase: str) -> None:
    """``n`` oral declarations at ``site``, one after another (each subject's items in a known order)."""
    who = people(site.community_id)
    recorder = tok(f"rec-{site.name}", Role.recorder, site.community_id)
    for i in range(n):
        body = {"community_id": site.community_id, "subject_id": who[i % len(who)], "rule_code": "VOLUNTEER_HOURS",
                "quantity": 1, "occurred_on": "2026-11-20", "channel": "oral", "description": f"{phase}-{i:03d}"}
        r = await http.post("/declarations", json=body, headers=recorder | {"idempotency-key": str(uuid.uuid4())})
        assert r.status_code == 201, (site.name, phase, i, r.text)


async def unpublished(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("select count(*) from events where published_at is null")  # type: ignore[no-any-return]
    finally:
        await conn.close()


async def ledger_holds(dsn: str, community: str, n: int) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        counts = dict(await conn.fetch("select community_id, count(*) from ledger group by 1"))
        return counts == {community: n}
    finally:
        await conn.close()


async def store_ids(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return {str(r["event_id"]) for r in await conn.fetch("select event_id from events")}
    finally:
        await conn.close()


async def review_items(review: httpx.AsyncClient, community: str) -> list[dict[str, Any]]:
    r = await review.get("/items", params={"community_id": community, "month": MONTH, "limit": 5000})
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


async def wait_for(what: str, check: Any, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        await asyncio.sleep(0.25)


async def read_records(settings: Settings, topic: str) -> list[tuple[int, int, dict[str, bytes], bytes | None]]:
    """Every record of ``topic``: (partition, offset, headers, key), per partition in offset order."""
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [topic])
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        out = []
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            for tp, records in (await consumer.getmany(*remaining, timeout_ms=1000)).items():
                out += [(tp.partition, r.offset, dict(r.headers), r.key) for r in records if r.offset < end[tp]]
                if records and records[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
        return sorted(out, key=lambda x: (x[0], x[1]))
    finally:
        await consumer.stop()


async def forge(settings: Settings, source: str, community: str) -> str:
    """A roster record on the declarations topic under ``source`` (the test holds the admin credential)."""
    ev = SubjectRegistered(subject_id=f"{community}-forged", community_id=community, kind="person", name="冒名",
                           categories=("resident",), registered_on=NOW.date())
    event_id = uuid.uuid4()
    producer = AIOKafkaProducer(**client_config(settings))
    await producer.start()
    try:
        await producer.send_and_wait(DECLARATIONS.name(settings), value=encode_body(ev), key=ev.subject_id.encode(),
                                     headers=headers(event_id=event_id, source=source, type_name=ev.type_name(),
                                                     stream_id=f"subject-{ev.subject_id}", version=1, time=NOW,
                                                     actor="forger", correlation_id=event_id, causation_id=None,
                                                     prev_hash="0" * 64, digest="f" * 64))
    finally:
        await producer.stop()
    return str(event_id)


async def test_given_three_sites_when_one_is_cut_off_then_it_keeps_taking_declarations_and_catches_up_once_in_order(
    settings: Settings,
) -> None:
    county = with_sites(settings, SITES)
    session = credentials.from_env()  # the test session's secrets: a password for each site is added
    secrets = await admit(county, SITES, None if session is None else session.path)
    own = {s.name: site_settings(county, s, await create_database(settings, f"site_{s.name}"), secrets)
           for s in SITES}
    now = {"DECLARATIONS_NOW": NOW.isoformat()}
    with contextlib.ExitStack() as running:
        review_svc = running.enter_context(running_service("review", county))
        sites = {s.name: running.enter_context(running_site(own[s.name], env=now | (
            {"RUN_RELAY": "false"} if s is CUT else {}))) for s in SITES}
        relay = contextlib.ExitStack()
        relay.enter_context(running_relay(own[CUT.name]))
        async with contextlib.AsyncExitStack() as http_stack:
            http = {n: await http_stack.enter_async_context(httpx.AsyncClient(base_url=svc.url, timeout=30))
                    for n, svc in sites.items()}
            review = await http_stack.enter_async_context(httpx.AsyncClient(
                base_url=review_svc.url, timeout=30, headers=tok("county-admin", Role.county_admin, "*")))
            # given: each site registers its community and takes declarations, all reaching the county
            await asyncio.gather(*(register_roster(http[s.name], s.community_id) for s in SITES))
            await asyncio.gather(*(declare(http[s.name], s, BEFORE, "before") for s in SITES))

            async def review_has(counts: dict[str, int]) -> bool:
                return [len(await review_items(review, c)) for c in counts] == list(counts.values())

            await wait_for("review sees every site's items", lambda: review_has(
                {s.community_id: BEFORE for s in SITES}))
            # a site refuses a command about another community (the county would refuse its events anyway)
            r = await http["hz01"].post("/communities", json={"community_id": "c-hz02", "name": "别的社区"},
                                        headers=ADMIN | {"idempotency-key": str(uuid.uuid4())})
            assert r.status_code == 403 and r.json()["error"] == "other_site", r.text

            # when: the cut site's link goes down, and every site keeps taking declarations
            relay.close()
            cut_at = time.monotonic()
            await asyncio.gather(*(declare(http[s.name], s, DURING, "during") for s in SITES))
            await wait_for("the connected sites' items reach review", lambda: review_has(
                {s.community_id: BEFORE + DURING for s in SITES if s is not CUT}))
            await asyncio.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
            held = await unpublished(own[CUT.name].database_url)
            assert held == DURING, f"the cut site's outbox holds {held} events, expected {DURING}"
            assert len(await review_items(review, CUT.community_id)) == BEFORE
            await asyncio.gather(*(declare(http[s.name], s, AFTER, "after") for s in SITES if s is not CUT))

            # then: the link comes back and the site catches up
            restored_at = time.monotonic()
            relay.enter_context(running_relay(own[CUT.name]))
            await asyncio.gather(*(declare(http[s.name], s, AFTER, "after") for s in SITES if s is CUT))
            total = BEFORE + DURING + AFTER
            await wait_for("review sees every item of every site", lambda: review_has(
                {s.community_id: total for s in SITES}))
            caught_up = time.monotonic()
            for s in SITES:
                assert await unpublished(own[s.name].database_url) == 0
                # a site's ledger (台账) is its own community's: the other sites' records are passed over
                await wait_for(f"site {s.name}'s ledger", lambda s=s: ledger_holds(  # type: ignore[misc]
                    own[s.name].database_url, s.community_id, BEFORE + DURING + AFTER))
            items = {s.name: await review_items(review, s.community_id) for s in SITES}
            records = await every_event_once_in_order_and_every_chain_verifies(settings, own, items)
            # an unregistered site's record and a site's record about another community: dead-lettered
            forged_unknown = await forge(settings, site_source("hz09", settings), "c-hz09")
            forged_other = await forge(settings, site_source("hz01", settings), "c-hz02")
            dead = await dead_letters(settings, {forged_unknown, forged_other})
        relay.close()
    assert "site 'hz09'" in dead[forged_unknown] and "not in the county's registry" in dead[forged_unknown]
    assert "site 'hz01'" in dead[forged_other] and "'c-hz02'" in dead[forged_other]
    # and the auditor finds the record forged under hz01's source in hz01's chain
    report = await verify(settings.model_copy(update={"database_url": own["hz01"].database_url}),
                          DECLARATIONS.name(settings), [site_source("hz01", settings)])
    assert [(p.kind, p.event_id) for p in report.problems] == [("inserted", forged_other)]
    # every site's chain in one read of the topic: the same finding in hz01's, none in the others'
    together = await verify_all(settings, DECLARATIONS.name(settings), {
        s.name: (own[s.name].database_url, [site_source(s.name, settings)]) for s in SITES})
    assert [(p.kind, p.event_id) for p in together["hz01"].problems] == [("inserted", forged_other)]
    assert all(r.ok and r.store_events > 0 for name, r in together.items() if name != "hz01")
    assert together["hz01"].topic_records == report.topic_records
    print(f"\nsite {CUT.name} cut off for {restored_at - cut_at:.1f} s holding {held} events; "
          f"caught up {caught_up - restored_at:.1f} s after its link came back; "
          f"{records} records from {len(SITES)} sites, every chain verified")


async def every_event_once_in_order_and_every_chain_verifies(
    settings: Settings, own: dict[str, Settings], items: dict[str, list[dict[str, Any]]]
) -> int:
    topic = DECLARATIONS.name(settings)
    records = await read_records(settings, topic)
    ids = Counter(h["ce_id"].decode() for _, _, h, _ in records)
    assert not [i for i, n in ids.items() if n > 1], "an event is on the topic twice"
    last: dict[tuple[bytes, bytes], int] = defaultdict(int)
    for _, _, h, _ in records:  # per partition in offset order: each stream's versions 1, 2, 3 …
        stream = (h["ce_source"], h["ce_subject"])
        version = int(h["ce_streamversion"])
        assert version == last[stream] + 1, f"{stream}: version {version} after {last[stream]}"
        last[stream] = version
    for s in SITES:
        source = site_source(s.name, settings)
        on_topic = {h["ce_id"].decode() for _, _, h, _ in records if h["ce_source"] == source.encode()}
        assert on_topic == await store_ids(own[s.name].database_url), f"site {s.name}: store and topic differ"
        # each site's chain verifies on its own; the other sites' records are theirs
        report = await verify(settings.model_copy(update={"database_url": own[s.name].database_url}), topic, [source])
        assert report.ok and report.unpublished == 0 and report.repeats == 0, report.problems[:3]
        assert report.store_events == len(on_topic) == report.topic_records
        assert set(report.other_sources) == {site_source(o.name, settings) for o in SITES if o is not s}
        assert sorted(i["description"] for i in items[s.name]) == sorted(
            [f"before-{i:03d}" for i in range(BEFORE)] + [f"during-{i:03d}" for i in range(DURING)]
            + [f"after-{i:03d}" for i in range(AFTER)])
    return len(records)


async def dead_letters(settings: Settings, wanted: set[str], timeout: float = 60) -> dict[str, str]:
    """The reasons the review service's items projection gave for the records ``wanted`` (event ids)."""
    consumer = AIOKafkaConsumer(DEAD_LETTER.name(settings), **consumer_config(settings), group_id=None)
    await consumer.start()
    found: dict[str, str] = {}
    try:
        deadline = time.monotonic() + timeout
        while set(found) != wanted:
            assert time.monotonic() < deadline, f"dead letters found: {found}"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    h = dict(r.headers)
                    if h.get("dlq_consumer") == b"review_items" and h.get("ce_id", b"").decode() in wanted:
                        found[h["ce_id"].decode()] = h["dlq_reason"].decode()
        return found
    finally:
        await consumer.stop()
