"""A correction from the review service (an upheld objection or a supervisor's correction) shows in
the ledger as a line of its own, referencing the original item, which is never edited."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.events.review import PointsCorrected
from tests.integration.declarations.harness import COMMUNITY, RECORDER, InProcess, publish_review

pytestmark = pytest.mark.integration


async def ledger_for(svc: InProcess, subject: str, want: int) -> dict[str, Any]:
    for _ in range(200):
        r = await svc.http.get("/ledger", params={"community_id": COMMUNITY, "subject_id": subject},
                               headers=RECORDER)
        body: dict[str, Any] = r.json()
        if len(body["items"]) >= want:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"the ledger never showed {want} lines for {subject}: {body}")


async def test_given_an_item_when_the_review_service_corrects_it_then_the_ledger_shows_both(svc: InProcess) -> None:
    r = await svc.post("/declarations", {"community_id": COMMUNITY, "subject_id": "p-he",
                                         "rule_code": "VOLUNTEER_HOURS", "quantity": 5,
                                         "occurred_on": "2026-11-10", "channel": "oral"}, RECORDER)
    assert r.status_code == 201, r.text
    original = r.json()["item_id"]
    await ledger_for(svc, "p-he", 1)

    await publish_review(svc.settings, COMMUNITY, [PointsCorrected(
        correction_id="corr-1", community_id=COMMUNITY, month="2026-11", item_id=original, item_month="2026-11",
        subject_id="p-he", category="volunteer", dimension="volunteer_service", rule_code="VOLUNTEER_HOURS",
        delta=-4, reason="核实后只有 3 小时", objection_id="obj-1")])

    body = await ledger_for(svc, "p-he", 2)
    lines = {i["item_id"]: i for i in body["items"]}
    assert lines[original]["points"] == 10, "the original line is never edited"
    correction = lines["corr-1"]
    assert (correction["points"], correction["channel"], correction["kind"]) == (-4, "correction", "correction")
    assert correction["entered_by"] == "review-test"
    assert [t["points"] for t in body["totals"] if t["subject_id"] == "p-he"] == [6]


async def test_given_a_garbage_month_filter_then_the_ledger_says_so(svc: InProcess) -> None:
    for path in ("/ledger", "/ledger.csv"):
        r = await svc.http.get(path, params={"community_id": COMMUNITY, "month": "2026-13'; drop"}, headers=RECORDER)
        assert r.status_code == 422 and r.json()["error"] == "invalid_request", r.text
