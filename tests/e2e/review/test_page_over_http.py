"""A page of looks over HTTP (``POST /items/verifications``): per-item outcomes with the single command's codes
and reasons, the first answer on a repeat, and a bad page refused whole with a reason and no event."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.auth import Role
from tests.e2e.review.test_review_over_http import post, refused, wait_until
from tests.integration.review.support import ReviewUnderTest, declaration, review_service
from tests.support.services import token

pytestmark = pytest.mark.e2e

MONTH = "2026-10"
IDS = [f"c-01-i{i:06d}" for i in range(12)]  # 0-9 entered by rec-1, 10-11 by rec-2
RECORDER = token("rec-2", Role.recorder, "c-01")
SUPERVISOR = token("sup-1", Role.supervisor, "c-01")
PATH = "/items/verifications"


@pytest.fixture(scope="module")
async def review(stack: tuple[str, str]) -> AsyncIterator[ReviewUnderTest]:
    async with review_service(stack) as r:
        day = dt.date(2026, 10, 10)
        await r.feed.publish([declaration(i, day=day) for i in range(10)]
                             + [declaration(i, day=day, by="rec-2") for i in (10, 11)]
                             + [declaration(0, community="c-02", day=day)])
        yield r


def waiting(review: ReviewUnderTest) -> set[str]:
    with review.service.client(SUPERVISOR) as http:
        items = http.get("/items", params={"community_id": "c-01", "month": MONTH, "status": "submitted"}).json()
    return {i["item_id"] for i in items["items"]}


def look(item_id: str, decision: str = "verified", note: str = "") -> dict[str, Any]:
    return {"item_id": item_id, "decision": decision, "note": note}


async def test_a_page_is_decided_item_by_item_and_a_repeat_gets_the_first_answer(review: ReviewUnderTest) -> None:
    wait_until(lambda: waiting(review) == set(IDS), "the items from the declarations topic")
    page = {"decisions": [*(look(i) for i in IDS[:6]), look(IDS[6], "rejected", "与事实不符"),
                          look(IDS[7], "returned", "请补充照片"), look(IDS[8], "rejected"), look(IDS[10]),
                          look("c-02-i000000"), look("c-01-i999999")]}
    before = await review.event_count()
    r = post(review, RECORDER, PATH, page, key="page-of-looks-1")
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["accepted"], answer["refused"], answer["event_count"]) == (8, 4, 8)
    assert [o["item_id"] for o in answer["outcomes"]] == [d["item_id"] for d in page["decisions"]]
    refusals = {o["item_id"]: (o["status"], o["error"]) for o in answer["outcomes"] if o["outcome"] == "refused"}
    assert refusals == {IDS[8]: (422, "reason_required"), IDS[10]: (403, "own_item"),
                        "c-02-i000000": (403, "forbidden_community"), "c-01-i999999": (404, "item_not_found")}
    assert all(o["reason"] for o in answer["outcomes"] if o["outcome"] == "refused")
    assert all(len(o["event_ids"]) == 1 for o in answer["outcomes"] if o["outcome"] == "accepted")
    assert await review.event_count() == before + 8
    # a repeat (a lost answer) gets the first answer and appends nothing
    again = post(review, RECORDER, PATH, page, key="page-of-looks-1")
    assert again.status_code == 200 and again.json() == answer
    assert await review.event_count() == before + 8
    other = post(review, RECORDER, PATH, {"decisions": [look(IDS[9])]}, key="page-of-looks-1")  # another page
    assert other.status_code == 409 and other.json()["error"] == "idempotency_key_reused"
    # the board shows what is left; a second page refuses what the first decided
    wait_until(lambda: waiting(review) == {IDS[8], IDS[9], IDS[10], IDS[11]}, "the board")
    second = post(review, SUPERVISOR, PATH, {"decisions": [look(IDS[0]), look(IDS[9])]}).json()
    assert [(o["outcome"], o.get("error")) for o in second["outcomes"]] == [("refused", "already_decided"),
                                                                            ("accepted", None)]


async def test_a_bad_page_is_refused_whole_with_a_reason_and_no_event(review: ReviewUnderTest) -> None:
    await refused(review, 422, "page_empty", RECORDER, PATH, {"decisions": []})
    await refused(review, 422, "page_too_large", RECORDER, PATH,
                  {"decisions": [look(f"c-01-x{n:06d}") for n in range(501)]})
    await refused(review, 422, "duplicate_item", RECORDER, PATH, {"decisions": [look(IDS[11]), look(IDS[11])]})
    await refused(review, 422, "invalid_request", RECORDER, PATH, {"decisions": [look("no such/id")]})
    await refused(review, 422, "invalid_request", RECORDER, PATH, {"decisions": [look(IDS[11], "maybe")]})
    await refused(review, 422, "invalid_request", RECORDER, PATH, {"decisions": "all"})
    await refused(review, 403, "forbidden_role", token("sec", Role.secretary, "c-01"), PATH,
                  {"decisions": [look(IDS[11])]})
    await refused(review, 403, "forbidden_role", token("r-1", Role.declarant, "c-01", "s-01"), PATH,
                  {"decisions": [look(IDS[11])]})
