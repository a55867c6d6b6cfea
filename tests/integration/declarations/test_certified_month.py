"""A month the review service certified (MonthCertified on the review topic) is closed to intake."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from shared.events.review import MonthCertified
from tests.integration.declarations.harness import COMMUNITY, RECORDER, InProcess, publish_review

pytestmark = pytest.mark.integration


async def given_the_review_service_certified(svc: InProcess, month: str) -> None:
    ev = MonthCertified(community_id=COMMUNITY, month=month, count=0, total=0, digest="0" * 64,
                        signed_by=("secretary", "member"), certified_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    await publish_review(svc.settings, COMMUNITY, [ev])
    for _ in range(200):
        if await svc.app.state.runtime.pool.fetchval(
                "select count(*) from certified_months where community_id = $1 and month = $2", COMMUNITY, month):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the certified month never reached the projection")


async def test_given_a_certified_month_when_declaring_into_it_then_409_and_no_event(svc: InProcess) -> None:
    body = {"community_id": COMMUNITY, "subject_id": "p-he", "rule_code": "LAW_STUDY", "quantity": 1,
            "occurred_on": "2026-10-15", "channel": "oral"}
    await given_the_review_service_certified(svc, "2026-10")
    before = await svc.events()
    r = await svc.post("/declarations", body, RECORDER)
    assert r.status_code == 409 and r.json()["error"] == "month_certified", r.text
    deduction = {k: v for k, v in body.items() if k != "channel"} | {
        "rule_code": "LITTERING", "reason": "乱扔垃圾", "evidence": ["photo:1"]}
    r = await svc.post("/deductions", deduction, RECORDER)
    assert r.status_code == 409 and r.json()["error"] == "month_certified", r.text
    r = await svc.post("/activities", {"community_id": COMMUNITY, "title": "学法", "rule_code": "LAW_STUDY",
                                       "occurred_on": "2026-10-15", "subject_ids": ["p-he"]}, RECORDER)
    assert r.status_code == 409 and r.json()["error"] == "month_certified", r.text
    assert await svc.events() == before
    r = await svc.post("/declarations", body | {"occurred_on": "2026-11-15"}, RECORDER)
    assert r.status_code == 201, r.text  # the open month still takes items
