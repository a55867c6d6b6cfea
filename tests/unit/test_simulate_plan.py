"""The county simulator's plan: what every community lives through, before anything runs."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

from deploy.simulate.plan import CHANNELS, Month, Plan, county
from deploy.simulate.staff import decision

RULES = {r["code"]: r for v in json.loads((Path(__file__).parents[2] / "services/declarations/data/rules.json")
                                          .read_text())["versions"] for r in v["rules"]}
PLAN = Plan(communities=3, subjects=900, activity_share=0.5, activity_size=50, report_lines=40, needs=2,
            deduction_every=100, connections=4, verify_concurrency=1, counters=3, redemptions=20)
MONTH = Month.before(dt.date(2026, 12, 6))


def when_planning() -> list:  # type: ignore[type-arg]
    return county(PLAN, MONTH, "run1")


def test_the_month_simulated_is_the_last_whole_month() -> None:
    assert (MONTH.name, MONTH.first, MONTH.days) == ("2026-11", dt.date(2026, 11, 1), 30)
    assert {MONTH.day(n) for n in range(100)} == {f"2026-11-{d:02d}" for d in range(1, 31)}


def test_every_community_has_its_share_of_the_subjects_registered_for_the_whole_year() -> None:
    communities = when_planning()
    assert [c.id for c in communities] == [s.community_id for s in (c.site for c in communities)]
    assert len({c.id for c in communities}) == PLAN.communities
    subjects = [s for c in communities for s in c.subjects]
    assert len(subjects) == PLAN.subjects
    assert len({s["subject_id"] for s in subjects}) == len(subjects)  # unique county-wide (the roster's rule)
    assert {s["registered_on"] for s in subjects} == {"2025-11-01"}


def test_every_community_declares_through_every_channel_and_every_kind_of_intake() -> None:
    for c in when_planning():
        kinds = Counter(r.kind for r in c.requests)
        assert set(kinds) == {"declaration", "activity", "work_report", "deduction"}
        channels = {r.body["channel"] for r in c.requests if r.kind == "declaration"}
        assert channels == set(CHANNELS)
        assert kinds["declaration"] == len(c.persons)  # one declaration per person
        assert c.needs and all(doer in c.persons for _, doer in c.needs)
        # the official account's items and the enterprises' reports come with the site's credential
        assert {r.role for r in c.requests if r.kind == "work_report"} == {"site"}
        assert {r.role for r in c.requests if r.body.get("channel") == "official_account"} == {"site"}
        assert {r.role for r in c.requests if r.kind == "deduction"} == {"supervisor"}


def test_every_request_is_about_its_own_community_within_the_month_and_the_rules() -> None:
    for c in when_planning():
        for r in c.requests:
            assert r.body["community_id"] == c.id
            assert r.body["occurred_on"].startswith(MONTH.name)
            rule = RULES[r.body["rule_code"]]
            quantities = [line["quantity"] for line in r.body.get("lines", [])] or [r.body["quantity"]]
            assert all(1 <= q <= rule.get("max_quantity", q) for q in quantities), r


def test_the_items_a_community_makes_are_counted_once_and_keys_are_never_reused() -> None:
    communities = when_planning()
    keys = [r.key for c in communities for r in c.requests] + [k for c in communities for k, _ in c.needs]
    assert len(set(keys)) == len(keys)
    for c in communities:
        lines = sum(len(r.body.get("subject_ids") or r.body.get("lines") or [None]) for r in c.requests)
        assert c.items == lines + len(c.needs)


def test_spread_over_the_month_the_kinds_are_interleaved_not_bunched() -> None:
    requests = when_planning()[0].requests
    half = Counter(r.kind for r in requests[: len(requests) // 2])
    every = Counter(r.kind for r in requests)
    assert all(abs(half[k] - every[k] / 2) <= 1 for k in every)


def test_a_second_recorder_verifies_most_items_and_decides_the_same_on_a_rerun() -> None:
    ids = [f"item-{n}" for n in range(2000)]
    decisions = Counter(decision(i)[0] for i in ids)
    assert decisions["verified"] > 0.9 * len(ids) and decisions["returned"] and decisions["rejected"]
    assert [decision(i) for i in ids] == [decision(i) for i in ids]
