"""Concurrent declarations are committed together (group commit) yet each keeps its own rules:
the monthly cap holds across a batch, and one idempotency key still means one event."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import pytest

from shared.auth import Role
from tests.integration.declarations.harness import ADMIN, COMMUNITY, RECORDER, InProcess, tok

pytestmark = pytest.mark.integration


def move(subject: str, **over: Any) -> dict[str, Any]:
    return {"community_id": COMMUNITY, "subject_id": subject, "rule_code": "HELP_MOVE", "quantity": 1,
            "occurred_on": "2026-11-09", "channel": "oral"} | over


async def test_given_30_concurrent_items_against_a_cap_of_6_then_exactly_6_are_accepted(svc: InProcess) -> None:
    before = await svc.events()
    answers = await asyncio.gather(*(svc.post("/declarations", move("p-zhao"), RECORDER) for _ in range(30)))
    codes = Counter((a.status_code, a.json().get("error")) for a in answers)
    assert codes == {(201, None): 6, (422, "monthly_cap_exceeded"): 24}
    assert await svc.events() == before + 6
    r = await svc.http.get("/ledger", params={"community_id": COMMUNITY, "subject_id": "p-zhao",
                                              "rule_code": "HELP_MOVE"}, headers=RECORDER)
    assert r.status_code == 200


async def test_given_one_key_sent_10_times_at_once_then_one_event_and_10_equal_answers(svc: InProcess) -> None:
    headers = RECORDER | {"idempotency-key": f"k-{uuid.uuid4()}"}
    before = await svc.events()
    answers = await asyncio.gather(*(svc.http.post("/declarations", json=move("p-chen"), headers=headers)
                                     for _ in range(10)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.text for a in answers}) == 1
    assert await svc.events() == before + 1


async def test_given_a_mix_of_good_and_bad_items_at_once_then_only_the_bad_are_refused(svc: InProcess) -> None:
    before = await svc.events()
    bodies = [move("p-he", rule_code="LAW_STUDY"), move("p-nobody"), move("p-he", rule_code="NOPE"),
              move("p-he", rule_code="COMMUNITY_MEETING"), move("p-he", occurred_on="2027-01-01")]
    answers = await asyncio.gather(*(svc.post("/declarations", b, RECORDER) for b in bodies))
    assert [(a.status_code, a.json().get("error")) for a in answers] == [
        (201, None), (422, "unknown_subject"), (422, "unknown_rule"), (201, None), (422, "future_date")]
    assert await svc.events() == before + 2


async def test_given_a_category_change_then_rules_for_the_new_category_apply(svc: InProcess) -> None:
    talk = move("p-sun", rule_code="POLICY_TALK", occurred_on="2026-11-18")
    r = await svc.post("/declarations", talk, RECORDER)
    assert r.status_code == 422 and r.json()["error"] == "rule_not_for_category"
    r = await svc.post("/subjects/p-sun/categories", {"categories": ["property_staff", "volunteer"],
                                                      "changed_on": "2026-11-01"}, RECORDER)
    assert r.status_code == 201, r.text
    r = await svc.post("/declarations", talk, RECORDER)
    assert r.status_code == 201 and r.json()["points"] == 10, r.text


async def test_given_a_county_admin_then_tokens_are_issued_and_work(svc: InProcess) -> None:
    r = await svc.post("/tokens", {"sub": "p-luo", "role": "declarant", "community": COMMUNITY,
                                   "subject_ids": ["p-luo"], "name": "罗开英"}, ADMIN)
    assert r.status_code == 201, r.text
    luo = {"authorization": f"Bearer {r.json()['token']}"}
    r = await svc.post("/declarations", move("p-luo", rule_code="LAW_STUDY", channel="app"), luo)
    assert r.status_code == 201, r.text
    r = await svc.post("/tokens", {"sub": "x", "role": "county_admin", "community": "*"}, RECORDER)
    assert r.status_code == 403 and r.json()["error"] == "forbidden_role"
    r = await svc.post("/tokens", {"sub": "x", "role": "recorder", "community": COMMUNITY},
                       tok("p-luo", Role.declarant, COMMUNITY, "p-luo"))
    assert r.status_code == 403


async def test_given_two_commands_decided_on_the_same_version_then_one_appends_and_the_other_is_decided_again(
    svc: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Monthly cap 60 (HELP_MOVE, 10 points each): 50 used, two more items both decided on that state."""
    from services.declarations import pipeline, tables

    for _ in range(5):
        assert (await svc.post("/declarations", move("p-li"), RECORDER)).status_code == 201
    loaded: list[int] = []
    both_loaded = asyncio.Event()
    real_load = tables.load

    async def load_then_wait(*args: Any, **kwargs: Any) -> Any:  # each first load waits for the other's
        state, heads = await real_load(*args, **kwargs)
        if "p-li" in state.subjects:
            loaded.append(state.subjects["p-li"].version)
            if len(loaded) == 2:
                both_loaded.set()
            await asyncio.wait_for(both_loaded.wait(), 10)
        return state, heads

    monkeypatch.setattr(pipeline.tables, "load", load_then_wait)
    # Two processes' worth: one pipeline each, so neither queue serialises the two.
    app = svc.app
    rival = pipeline.Pipeline(app.state.runtime.pool, app.state.runtime.store, app.state.catalogue)
    original = app.state.pipeline
    before = await svc.events()
    first = asyncio.create_task(svc.post("/declarations", move("p-li"), RECORDER))
    await asyncio.sleep(0)
    app.state.pipeline = rival
    try:
        second = asyncio.create_task(svc.post("/declarations", move("p-li"), RECORDER))
        answers = await asyncio.gather(first, second)
    finally:
        app.state.pipeline = original
        await rival.stop()
    assert loaded[:2] == [loaded[0], loaded[0]]  # both decided on the same version
    assert sorted((a.status_code, a.json().get("error")) for a in answers) == [
        (201, None), (422, "monthly_cap_exceeded")]
    refused = next(a.json() for a in answers if a.status_code == 422)
    assert refused["detail"] == {"used": 60, "cap": 60, "remaining": 0}  # decided again, on the new state
    assert len(loaded) == 3 and loaded[2] == loaded[0] + 1
    assert await svc.events() == before + 1
    assert original.conflicts + rival.conflicts == 1


async def test_given_a_stream_that_keeps_changing_then_the_command_is_decided_a_bounded_number_of_times_then_409(
    svc: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.declarations import pipeline
    from shared.store import ConcurrencyError, EventStore

    tries: list[int] = []

    async def always_behind(*args: Any, **kwargs: Any) -> Any:
        tries.append(1)
        raise ConcurrencyError("stream subject-p-zhang was appended to concurrently")

    monkeypatch.setattr(EventStore, "append_many", always_behind)
    before = await svc.events()
    r = await svc.post("/declarations", move("p-zhang", rule_code="LAW_STUDY"), RECORDER)
    assert (r.status_code, r.json()["error"]) == (409, "concurrent_update"), r.text
    assert "请稍后再试" in r.json()["reason"] and r.json()["detail"]["attempts"] == pipeline.ATTEMPTS
    assert len(tries) == pipeline.ATTEMPTS
    assert await svc.events() == before


async def test_given_the_snapshot_then_it_equals_the_fold_of_the_subjects_stream(svc: InProcess) -> None:
    from services.declarations import tables
    from services.declarations.domain.decide import Wants
    from services.declarations.domain.state import fold

    rt = svc.app.state.runtime
    async with rt.pool.acquire() as conn:
        history = [env.event for env in await rt.store.load(conn, "subject-p-zhao")]
        folded = fold(history)
        catalogue, published = await svc.app.state.catalogue.current(conn)
        w = Wants(subjects={"p-zhao"}, usage={("p-zhao", "HELP_MOVE", "2026-11")})
        snapshot = (await tables.load(conn, w, catalogue, published))[0].subjects["p-zhao"]
    assert folded == snapshot and snapshot.used("HELP_MOVE", "2026-11") == 60


async def test_given_the_roster_then_communities_and_the_org_tree_are_listed(svc: InProcess) -> None:
    r = await svc.http.get("/communities", headers=RECORDER)
    assert [c["community_id"] for c in r.json()["items"]] == [COMMUNITY]
    r = await svc.http.get("/org-units", params={"community_id": COMMUNITY}, headers=RECORDER)
    units = r.json()["items"]
    assert [u["kind"] for u in units][:3] == ["joint_committee", "general_branch", "branch"]
    assert {u["kind"] for u in units} == {"joint_committee", "general_branch", "branch", "group", "building",
                                          "workshop", "volunteer_team"}


async def test_given_everything_appended_in_this_module_then_the_log_is_one_unbroken_hash_chain(
    svc: InProcess,
) -> None:
    from shared.verify import compare, read_store

    rt = svc.app.state.runtime
    async with rt.pool.acquire() as conn:
        links, legacy = await read_store(conn, rt.store.topic)
    report = compare(links, [], legacy_store=legacy)  # the store alone: every link recomputed, no gap
    assert report.store_events > 40
    assert report.problems == []
    assert [link.position for link in links] == list(range(1, len(links) + 1))


async def test_given_activities_racing_declarations_on_the_same_people_then_none_is_refused_as_concurrent(
        svc: InProcess) -> None:
    # given: activities (one command on several subjects) sent while declarations on the same people are
    # being committed, as a site under load sees them
    people = ["p-luo", "p-he"]
    activity = {"community_id": COMMUNITY, "title": "清理小区绿化带", "rule_code": "VOLUNTARY_LABOUR", "quantity": 1,
                "occurred_on": "2026-11-16", "subject_ids": people}
    before = await svc.events()

    # when: they all arrive at once
    answers = await asyncio.gather(
        *(svc.post("/activities", activity, RECORDER) for _ in range(8)),
        *(svc.post("/declarations", move(people[i % 2], rule_code="LAW_STUDY"), RECORDER) for i in range(48)))

    # then: each is decided on the people's current state (accepted, or over a monthly cap), none refused
    # because another request changed them first
    codes = Counter((a.status_code, a.json().get("error")) for a in answers)
    assert set(codes) <= {(201, None), (422, "monthly_cap_exceeded")}, codes
    activities = sum(a.status_code == 201 for a in answers[:8])
    declarations = sum(a.status_code == 201 for a in answers[8:])
    assert activities == 8
    assert await svc.events() - before >= activities * len(people) + declarations
