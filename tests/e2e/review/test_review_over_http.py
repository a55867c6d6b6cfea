"""The review service as a process over HTTP: a month's whole life, and every misuse refused with no event."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from shared.auth import Role
from tests.integration.review.support import ReviewUnderTest, declaration, review_service
from tests.support.services import token

pytestmark = pytest.mark.e2e

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
MONTH = "2026-10"
IDS = [f"c-01-i{i:06d}" for i in range(6)]
SECRETARY = token("sec", Role.secretary, "c-01")
MEMBER_1 = token("lg-1", Role.leading_group, "c-01")
MEMBER_2 = token("lg-2", Role.leading_group, "c-01")
RECORDER = token("rec-2", Role.recorder, "c-01")
SUPERVISOR = token("sup-1", Role.supervisor, "c-01")
RESIDENT = token("r-1", Role.declarant, "c-01", "s-01")
OTHER_RESIDENT = token("r-9", Role.declarant, "c-02", "s-99")


@pytest.fixture(scope="module")
async def review(stack: tuple[str, str]) -> AsyncIterator[ReviewUnderTest]:
    async with review_service(stack) as r:
        items = [declaration(i, day=dt.date(2026, 10, 10)) for i in range(5)]
        items.append(declaration(5, day=dt.date(2026, 10, 12), by="lg-1"))  # a member recorded this one
        await r.feed.publish(items)
        yield r


def wait_until(check: Callable[[], bool], what: str, within: float = 15) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def post(review: ReviewUnderTest, who: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    with review.service.client(who) as http:
        return http.post(path, json=body or {}, headers={"idempotency-key": str(uuid.uuid4())})


def notice_page(review: ReviewUnderTest) -> str:
    """公示 is public: read without a token."""
    return httpx.get(f"{review.service.url}/notice/c-01/{MONTH}").text


async def refused(review: ReviewUnderTest, response: httpx.Response, status: int, code: str) -> None:
    before = await review.event_count()
    assert response.status_code == status, response.text
    assert response.json()["error"] == code and response.json()["reason"]
    assert await review.event_count() == before


async def test_a_month_from_verification_to_final_with_every_misuse_refused(review: ReviewUnderTest) -> None:
    with review.service.client(SECRETARY) as http:
        wait_until(lambda: len(http.get("/items", params={"community_id": "c-01", "month": MONTH}).json()["items"])
                   == 6, "the items from the declarations topic")
    for item_id in IDS:
        assert post(review, RECORDER, f"/items/{item_id}/verification", {"decision": "verified"}).status_code == 201
    await refused(review, post(review, RECORDER, f"/items/{IDS[0]}/verification", {"decision": "rejected",
                                                                                   "note": "x"}),
                  409, "already_decided")
    certify = {"community_id": "c-01", "month": MONTH, "co_signer_tokens": [MEMBER_1, MEMBER_2]}

    review.set_clock(dt.datetime(2026, 10, 30, 23, 59, tzinfo=SHANGHAI))
    await refused(review, post(review, SECRETARY, "/certifications", certify), 422, "too_early")
    review.set_clock(dt.datetime(2026, 10, 31, 9, 0, tzinfo=SHANGHAI))
    await refused(review, post(review, SECRETARY, "/certifications", certify | {"co_signer_tokens": []}),
                  422, "quorum_not_met")
    await refused(review, post(review, SECRETARY, "/certifications", certify | {"co_signer_tokens": [MEMBER_1]}),
                  422, "own_item")  # lg-1 recorded an item: it needs another signer
    await refused(review, post(review, RECORDER, "/certifications", certify), 403, "forbidden_role")
    ok = post(review, SECRETARY, "/certifications", certify)
    assert ok.status_code == 201, ok.text
    assert (ok.json()["count"], ok.json()["total"], ok.json()["event_count"]) == (6, 12, 7)
    await refused(review, post(review, MEMBER_1, "/certifications", certify | {"co_signer_tokens": [SECRETARY]}),
                  409, "already_certified")

    posted = dt.datetime(2026, 10, 31, 15, 0, tzinfo=SHANGHAI)
    review.set_clock(posted)
    assert post(review, SECRETARY, "/notices", {"community_id": "c-01", "month": MONTH}).status_code == 201
    wait_until(lambda: "小区公告栏" in notice_page(review), "the notice page")
    page = notice_page(review)
    assert "积分认定结果公示" in page and "s-01" in page and "2026-11-07 15:00" in page

    objection = {"community_id": "c-01", "month": MONTH, "item_id": IDS[1], "reason": "那天他不在社区"}
    raised = post(review, RESIDENT, "/objections", objection)
    assert raised.status_code == 201, raised.text
    await refused(review, post(review, RESIDENT, "/objections", objection), 409, "already_objected")
    await refused(review, post(review, OTHER_RESIDENT, "/objections", objection), 403, "forbidden_community")
    oid = raised.json()["objection_id"]
    upheld = post(review, SECRETARY, f"/objections/{oid}/uphold", {"delta": -2, "reason": "核实属实"})
    assert upheld.status_code == 201, upheld.text
    await refused(review, post(review, MEMBER_1, f"/objections/{oid}/dismiss", {"reason": "x"}),
                  409, "objection_resolved")
    await refused(review, post(review, SUPERVISOR, "/corrections", {"community_id": "c-01", "item_id": "no-such",
                                                                    "delta": 2, "reason": "补录"}),
                  404, "item_not_found")
    await refused(review, post(review, SECRETARY, f"/months/c-01/{MONTH}/finalise"), 409, "window_open")

    review.set_clock(posted + dt.timedelta(days=7, seconds=1))
    await refused(review, post(review, RESIDENT, "/objections", objection | {"item_id": IDS[2]}),
                  409, "window_closed")
    assert post(review, SECRETARY, f"/months/c-01/{MONTH}/finalise").status_code == 201
    with review.service.client(SECRETARY) as http:
        wait_until(lambda: http.get(f"/months/c-01/{MONTH}").json()["month"]["finalised_at"] is not None,
                   "the month to show as final")
        corrections = http.get("/corrections", params={"community_id": "c-01"}).json()["corrections"]
    assert [(c["item_id"], c["delta"], c["month"]) for c in corrections] == [(IDS[1], -2, "2026-11")]


async def test_bad_requests_get_a_reason_and_no_event(review: ReviewUnderTest) -> None:
    await refused(review, post(review, SECRETARY, "/certifications", {"community_id": "c-01", "month": "2026-13"}),
                  422, "invalid_request")
    await refused(review, post(review, RECORDER, "/items/no-such/verification", {"decision": "verified"}),
                  404, "item_not_found")
    await refused(review, post(review, RECORDER, f"/items/{IDS[0]}/verification", {"decision": "maybe"}),
                  422, "invalid_request")
    with review.service.client(SECRETARY) as http:
        r = http.post("/notices", content=b"{broken", headers={"idempotency-key": str(uuid.uuid4()),
                                                               "content-type": "application/json"})
    await refused(review, r, 400, "json_invalid")
    await refused(review, post(review, token("sec-2", Role.secretary, "c-02"), "/certifications",
                               {"community_id": "c-01", "month": MONTH}), 403, "forbidden_community")
