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


def post(review: ReviewUnderTest, who: str, path: str, body: dict[str, Any] | None = None,
         key: str | None = None) -> httpx.Response:
    with review.service.client(who) as http:
        return http.post(path, json=body or {}, headers={"idempotency-key": key or str(uuid.uuid4())})


def notice_page(review: ReviewUnderTest) -> str:
    """公示 is public: read without a token."""
    return httpx.get(f"{review.service.url}/notice/c-01/{MONTH}").text


async def refused(review: ReviewUnderTest, status: int, code: str, who: str, path: str,
                  body: dict[str, Any] | None = None, raw: bytes | None = None) -> None:
    """The request is refused with a stable code and a zh-CN reason, and the log has not grown."""
    before = await review.event_count()
    if raw is None:
        response = post(review, who, path, body)
    else:
        with review.service.client(who) as http:
            response = http.post(path, content=raw, headers={"idempotency-key": str(uuid.uuid4()),
                                                             "content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["error"] == code and response.json()["reason"]
    assert await review.event_count() == before


async def test_a_month_from_verification_to_final_with_every_misuse_refused(review: ReviewUnderTest) -> None:
    with review.service.client(SECRETARY) as http:
        wait_until(lambda: len(http.get("/items", params={"community_id": "c-01", "month": MONTH}).json()["items"])
                   == 6, "the items from the declarations topic")
    for item_id in IDS:
        assert post(review, RECORDER, f"/items/{item_id}/verification", {"decision": "verified"}).status_code == 201
    await refused(review, 409, "already_decided", RECORDER, f"/items/{IDS[0]}/verification",
                  {"decision": "rejected", "note": "x"})
    await refused(review, 403, "forbidden_role", RECORDER, f"/items/{IDS[3]}/overrule",
                  {"decision": "rejected", "note": "x"})
    await refused(review, 422, "reason_required", SUPERVISOR, f"/items/{IDS[3]}/overrule", {"decision": "rejected"})
    for decision in ("rejected", "verified"):  # a supervisor overrules, then thinks again: both stay in the log
        r = post(review, SUPERVISOR, f"/items/{IDS[3]}/overrule", {"decision": decision, "note": "复核"})
        assert r.status_code == 201, r.text
    certify = {"community_id": "c-01", "month": MONTH, "co_signer_tokens": [MEMBER_1, MEMBER_2]}

    review.set_clock(dt.datetime(2026, 10, 30, 23, 59, tzinfo=SHANGHAI))
    await refused(review, 422, "too_early", SECRETARY, "/certifications", certify)
    review.set_clock(dt.datetime(2026, 10, 31, 9, 0, tzinfo=SHANGHAI))
    await refused(review, 422, "quorum_not_met", SECRETARY, "/certifications", certify | {"co_signer_tokens": []})
    # lg-1 recorded an item: it needs another signer
    await refused(review, 422, "own_item", SECRETARY, "/certifications", certify | {"co_signer_tokens": [MEMBER_1]})
    await refused(review, 403, "forbidden_role", RECORDER, "/certifications", certify)
    key = str(uuid.uuid4())
    ok = post(review, SECRETARY, "/certifications", certify, key=key)
    assert ok.status_code == 201, ok.text
    assert (ok.json()["count"], ok.json()["total"], ok.json()["event_count"]) == (6, 12, 7)
    events = await review.event_count()
    again = post(review, SECRETARY, "/certifications", certify, key=key)  # a retry: the first answer, no event
    assert (again.status_code, again.json(), await review.event_count()) == (201, ok.json(), events)
    await refused(review, 409, "already_certified", MEMBER_1, "/certifications",
                  certify | {"co_signer_tokens": [SECRETARY]})

    posted = dt.datetime(2026, 10, 31, 15, 0, tzinfo=SHANGHAI)
    review.set_clock(posted)
    assert post(review, SECRETARY, "/notices", {"community_id": "c-01", "month": MONTH}).status_code == 201
    wait_until(lambda: "小区公告栏" in notice_page(review), "the notice page")
    page = notice_page(review)
    assert "积分认定结果公示" in page and "s-01" in page and "2026-11-07 15:00" in page

    objection = {"community_id": "c-01", "month": MONTH, "item_id": IDS[1], "reason": "那天他不在社区"}
    raised = post(review, RESIDENT, "/objections", objection)
    assert raised.status_code == 201, raised.text
    await refused(review, 409, "already_objected", RESIDENT, "/objections", objection)
    await refused(review, 403, "forbidden_community", OTHER_RESIDENT, "/objections", objection)
    oid = raised.json()["objection_id"]
    upheld = post(review, SECRETARY, f"/objections/{oid}/uphold", {"delta": -2, "reason": "核实属实"})
    assert upheld.status_code == 201, upheld.text
    await refused(review, 409, "objection_resolved", MEMBER_1, f"/objections/{oid}/dismiss", {"reason": "x"})
    await refused(review, 404, "item_not_found", SUPERVISOR, "/corrections",
                  {"community_id": "c-01", "item_id": "no-such", "delta": 2, "reason": "补录"})
    await refused(review, 409, "window_open", SECRETARY, f"/months/c-01/{MONTH}/finalise")

    review.set_clock(posted + dt.timedelta(days=7, seconds=1))
    await refused(review, 409, "window_closed", RESIDENT, "/objections", objection | {"item_id": IDS[2]})
    assert post(review, SECRETARY, f"/months/c-01/{MONTH}/finalise").status_code == 201
    with review.service.client(SECRETARY) as http:
        wait_until(lambda: http.get(f"/months/c-01/{MONTH}").json()["month"]["finalised_at"] is not None,
                   "the month to show as final")
        corrections = http.get("/corrections", params={"community_id": "c-01"}).json()["corrections"]
    assert [(c["item_id"], c["delta"], c["month"]) for c in corrections] == [(IDS[1], -2, "2026-11")]


async def test_bad_requests_get_a_reason_and_no_event(review: ReviewUnderTest) -> None:
    await refused(review, 422, "invalid_request", SECRETARY, "/certifications",
                  {"community_id": "c-01", "month": "2026-13"})
    await refused(review, 404, "item_not_found", RECORDER, "/items/no-such/verification", {"decision": "verified"})
    await refused(review, 422, "invalid_request", RECORDER, f"/items/{IDS[0]}/verification", {"decision": "maybe"})
    await refused(review, 400, "json_invalid", SECRETARY, "/notices", raw=b"{broken")
    await refused(review, 403, "forbidden_community", token("sec-2", Role.secretary, "c-02"), "/certifications",
                               {"community_id": "c-01", "month": MONTH})


async def test_a_nonsense_page_size_gets_a_reason_not_a_crash(review: ReviewUnderTest) -> None:
    with review.service.client(SECRETARY) as http:
        for limit in (-1, 0, 10**9):
            r = http.get("/items", params={"community_id": "c-01", "month": MONTH, "limit": limit})
            assert r.status_code == 422 and r.json()["error"] == "invalid_request", r.text
