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
ADMIN = token("admin", Role.county_admin, "*")
OTHER_RESIDENT = token("r-9", Role.declarant, "c-02", "s-99")


@pytest.fixture(scope="module")
async def review(stack: tuple[str, str]) -> AsyncIterator[ReviewUnderTest]:
    async with review_service(stack, clock_adjustable=True) as r:
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
    # nobody verifies what they entered themselves (rec-1 entered items 0-4)
    await refused(review, 403, "own_item", token("rec-1", Role.recorder, "c-01"), f"/items/{IDS[0]}/verification",
                  {"decision": "rejected", "note": "x"})

    def to_sign() -> dict[str, Any]:
        with review.service.client(SECRETARY) as http:
            return http.get(f"/certifications/c-01/{MONTH}").json()  # type: ignore[no-any-return]
    wait_until(lambda: (to_sign()["count"], to_sign()["waiting"]) == (6, 0), "the verified list to sign")
    certify = {"community_id": "c-01", "month": MONTH, "digest": to_sign()["digest"]}

    review.set_clock(dt.datetime(2026, 10, 30, 23, 59, tzinfo=SHANGHAI))
    await refused(review, 422, "too_early", SECRETARY, "/certifications", certify)
    review.set_clock(dt.datetime(2026, 10, 31, 9, 0, tzinfo=SHANGHAI))
    # nobody's credential travels in another person's request
    await refused(review, 422, "credential_in_body", SECRETARY, "/certifications",
                  certify | {"co_signer_tokens": [MEMBER_1]})
    await refused(review, 409, "digest_changed", SECRETARY, "/certifications", certify | {"digest": "0" * 64})
    await refused(review, 403, "forbidden_role", RECORDER, "/certifications", certify)
    first = post(review, SECRETARY, "/certifications", certify)
    assert first.status_code == 201, first.text
    assert (first.json()["certified"], first.json()["signed_by"]) == (False, ["sec"])
    assert "1 名其他领导小组成员" in first.json()["still_needed"]
    await refused(review, 409, "already_signed", SECRETARY, "/certifications", certify)
    # lg-1 recorded an item: nobody certifies their own item, so another member must sign too
    second = post(review, MEMBER_1, "/certifications", certify)
    assert second.status_code == 201 and second.json()["certified"] is False, second.text
    assert "自己" in second.json()["still_needed"]
    key = str(uuid.uuid4())
    ok = post(review, MEMBER_2, "/certifications", certify, key=key)
    assert ok.status_code == 201, ok.text
    assert (ok.json()["certified"], ok.json()["count"], ok.json()["total"], ok.json()["event_count"]) == (
        True, 6, 12, 1 + 6 + 1)
    events = await review.event_count()
    again = post(review, MEMBER_2, "/certifications", certify, key=key)  # a retry: the first answer, no event
    assert (again.status_code, again.json(), await review.event_count()) == (201, ok.json(), events)
    with review.service.client(MEMBER_1) as http:
        repeat = http.post("/certifications", json=certify, headers={"idempotency-key": str(uuid.uuid4())})
    assert repeat.status_code == 409 and repeat.json()["error"] == "already_certified"
    assert "2026-10-31 09:00" in repeat.json()["reason"]  # Beijing time, as on the notice (not 01:00 UTC)

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

    # a county admin moves the running service's clock past the window (audited: a ClockSet event)
    moved = {"now": (posted + dt.timedelta(days=7, seconds=1)).isoformat(), "frozen": True, "reason": "演示异议期结束"}
    await refused(review, 403, "forbidden_role", SECRETARY, "/admin/clock", moved)
    before = await review.event_count()
    clock_set = post(review, ADMIN, "/admin/clock", moved)
    assert clock_set.status_code == 201 and clock_set.json()["now"] == "2026-11-07T07:00:01+00:00", clock_set.text
    assert await review.event_count() == before + 1
    closed = post(review, RESIDENT, "/objections", objection | {"item_id": IDS[2]})
    assert closed.status_code == 409 and closed.json()["error"] == "window_closed"
    assert "2026-11-07 15:00" in closed.json()["reason"]  # Beijing time
    assert post(review, SECRETARY, f"/months/c-01/{MONTH}/finalise").status_code == 201
    with review.service.client(SECRETARY) as http:
        wait_until(lambda: http.get(f"/months/c-01/{MONTH}").json()["month"]["finalised_at"] is not None,
                   "the month to show as final")
        corrections = http.get("/corrections", params={"community_id": "c-01"}).json()["corrections"]
    assert [(c["item_id"], c["delta"], c["month"]) for c in corrections] == [(IDS[1], -2, "2026-11")]
    back = post(review, ADMIN, "/admin/clock", {"now": None, "reason": "演示结束，恢复时钟"})
    assert back.status_code == 201, back.text

    # an item declarations accepted for October that reaches review only now is carried into November
    await review.feed.publish([declaration(60, day=dt.date(2026, 10, 20))])
    with review.service.client(SECRETARY) as http:
        def carried() -> list[dict[str, Any]]:
            got = http.get("/items", params={"community_id": "c-01", "month": "2026-11"}).json()["items"]
            return [i for i in got if i["item_id"] == "c-01-i000060"]
        wait_until(lambda: bool(carried()), "the late item carried into November")
        [late] = carried()
    assert (late["status"], late["carried_from"]) == ("submitted", "2026-10") and "转入 2026-11" in late["note"]


async def test_bad_requests_get_a_reason_and_no_event(review: ReviewUnderTest) -> None:
    await refused(review, 422, "invalid_request", SECRETARY, "/certifications",
                  {"community_id": "c-01", "month": "2026-13", "digest": "0" * 64})
    await refused(review, 404, "item_not_found", RECORDER, "/items/no-such/verification", {"decision": "verified"})
    await refused(review, 422, "invalid_request", RECORDER, f"/items/{IDS[0]}/verification", {"decision": "maybe"})
    await refused(review, 400, "json_invalid", SECRETARY, "/notices", raw=b"{broken")
    await refused(review, 403, "forbidden_community", token("sec-2", Role.secretary, "c-02"), "/certifications",
                  {"community_id": "c-01", "month": MONTH, "digest": "0" * 64})


async def test_a_nonsense_page_size_gets_a_reason_not_a_crash(review: ReviewUnderTest) -> None:
    with review.service.client(SECRETARY) as http:
        for limit in (-1, 0, 10**9):
            r = http.get("/items", params={"community_id": "c-01", "month": MONTH, "limit": limit})
            assert r.status_code == 422 and r.json()["error"] == "invalid_request", r.text


async def test_query_parameters_are_validated_like_bodies(review: ReviewUnderTest) -> None:
    with review.service.client(SECRETARY) as http:
        for path, params in (("/items", {"community_id": "c-01", "month": "garbage"}),
                             ("/items", {"community_id": "c-01", "month": MONTH, "status": "maybe"}),
                             ("/months/c-01/2026-13", {}), ("/certifications/c-01/9999", {})):
            r = http.get(path, params=params)
            assert r.status_code == 422 and r.json()["error"] == "invalid_request" and r.json()["reason"], r.text
