"""Every bad input gets a clear 4xx naming the problem, and leaves no event behind."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from shared.auth import Role
from tests.integration.declarations.harness import (
    COMMUNITY,
    NOW,
    RECORDER,
    SITE,
    SUPERVISOR,
    InProcess,
    key,
    tok,
)

pytestmark = pytest.mark.integration


def item(**over: Any) -> dict[str, Any]:
    return {"community_id": COMMUNITY, "subject_id": "p-yang", "rule_code": "BUILDING_PATROL", "quantity": 1,
            "occurred_on": "2026-11-10", "channel": "oral", "description": "巡查 3 栋"} | over


def deduction(**over: Any) -> dict[str, Any]:
    return {"community_id": COMMUNITY, "subject_id": "p-wang", "rule_code": "LITTERING", "quantity": 1,
            "occurred_on": "2026-11-12", "reason": "楼道堆放杂物", "evidence": ["photo:hz01/20261112-01.jpg"]} | over


async def then_refused(svc: InProcess, path: str, body: dict[str, Any], auth: dict[str, str], status: int,
                       code: str) -> dict[str, Any]:
    before = await svc.events()
    r = await svc.post(path, body, auth)
    assert r.status_code == status, r.text
    answer: dict[str, Any] = r.json()
    assert answer["error"] == code and answer["reason"], answer
    assert await svc.events() == before, "a refused command left an event behind"
    return answer


OTHER_RECORDER = tok("rec-other", Role.recorder, "c-hz02")
DECLARANT_ZHANG = tok("p-zhang", Role.declarant, COMMUNITY, "p-zhang", "f-zhang")


@pytest.mark.parametrize(("case", "body", "auth", "status", "code"), [
    ("unknown subject", item(subject_id="p-nobody"), RECORDER, 422, "unknown_subject"),
    ("unknown rule", item(rule_code="NO_SUCH_RULE"), RECORDER, 422, "unknown_rule"),
    ("unknown community", item(community_id="c-none"), tok("r", Role.recorder, "c-none"), 422, "unknown_community"),
    ("rule not for the category", item(subject_id="p-zhao"), RECORDER, 422, "rule_not_for_category"),
    ("category the subject does not hold", item(category="resident"), RECORDER, 422, "category_not_held"),
    ("future date", item(occurred_on="2026-12-01"), RECORDER, 422, "future_date"),
    ("before the subject registered", item(occurred_on="2026-09-30"), RECORDER, 422, "subject_inactive"),
    ("negative quantity", item(quantity=-1), RECORDER, 422, "invalid_request"),
    ("zero quantity", item(quantity=0), RECORDER, 422, "invalid_request"),
    ("absurd quantity", item(quantity=999), RECORDER, 422, "quantity_out_of_range"),
    ("absurd quantity beyond the schema", item(quantity=10**9), RECORDER, 422, "invalid_request"),
    ("quantity as text", item(quantity="many"), RECORDER, 422, "invalid_request"),
    ("missing evidence", item(subject_id="p-he", rule_code="GOOD_DEED"), RECORDER, 422, "evidence_required"),
    ("unknown channel", item(channel="fax"), RECORDER, 422, "unknown_channel"),
    ("a deduction rule through declarations", item(rule_code="LITTERING", evidence=["x"]), RECORDER, 422,
     "deduction_rule"),
    ("a staff-only rule by a declarant", item(subject_id="p-zhang", rule_code="CLEAN_HOME", channel="app"),
     DECLARANT_ZHANG, 403, "forbidden_role"),
    ("token for another community", item(), OTHER_RECORDER, 403, "forbidden_community"),
    ("declarant declaring for someone else", item(channel="app"), DECLARANT_ZHANG, 403, "not_own_subject"),
    ("oral channel by a site credential", item(), SITE, 403, "forbidden_role"),
    ("official account by a declarant", item(subject_id="p-zhang", rule_code="LAW_STUDY",
                                             channel="official_account"), DECLARANT_ZHANG, 403, "forbidden_role"),
    ("unknown field", item(points=500), RECORDER, 422, "invalid_request"),
    ("date that is not a date", item(occurred_on="2026-02-30"), RECORDER, 422, "invalid_request"),
])
async def test_given_a_bad_declaration_when_posted_then_4xx_and_no_event(
    svc: InProcess, case: str, body: dict[str, Any], auth: dict[str, str], status: int, code: str
) -> None:
    await then_refused(svc, "/declarations", body, auth, status, code)


@pytest.mark.parametrize(("case", "body", "auth", "status", "code"), [
    ("by a declarant", deduction(subject_id="p-zhang"), DECLARANT_ZHANG, 403, "forbidden_role"),
    ("by a site credential", deduction(), SITE, 403, "forbidden_role"),
    ("without evidence", deduction(evidence=[]), RECORDER, 422, "evidence_required"),
    ("without a reason", deduction(reason=""), RECORDER, 422, "invalid_request"),
    ("with a positive rule", deduction(rule_code="LAW_STUDY"), RECORDER, 422, "not_a_deduction_rule"),
    ("for another community", deduction(), OTHER_RECORDER, 403, "forbidden_community"),
    ("in the future", deduction(occurred_on="2026-12-02"), SUPERVISOR, 422, "future_date"),
])
async def test_given_a_bad_deduction_when_posted_then_4xx_and_no_event(
    svc: InProcess, case: str, body: dict[str, Any], auth: dict[str, str], status: int, code: str
) -> None:
    await then_refused(svc, "/deductions", body, auth, status, code)


@pytest.mark.parametrize(("case", "body", "headers", "status", "code"), [
    ("broken JSON", b"{not json", {}, 400, "json_invalid"),
    ("not UTF-8", b"\xff\xfe\xfa", {}, 400, "json_invalid"),
    ("GBK-encoded Chinese", '{"description": "帮助搬家"}'.encode("gb18030"), {}, 400, "json_invalid"),
    ("a JSON array", b"[]", {}, 422, "invalid_request"),
    ("oversized body", b'{"description": "' + b"x" * 300_000 + b'"}', {}, 413, "body_too_large"),
    ("no idempotency key", b"{}", {"idempotency-key": ""}, 422, "invalid_request"),
])
async def test_given_an_unreadable_body_when_posted_then_4xx_and_no_event(
    svc: InProcess, case: str, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    before = await svc.events()
    r = await svc.http.post("/declarations", content=body,
                            headers=RECORDER | key() | {"content-type": "application/json"} | headers)
    assert r.status_code == status, r.text
    assert r.json()["error"] == code and r.json()["reason"]
    assert await svc.events() == before


async def test_given_no_token_when_declaring_then_401(svc: InProcess) -> None:
    await then_refused(svc, "/declarations", item(), {}, 401, "token_missing")
    await then_refused(svc, "/declarations", item(), {"authorization": "Bearer forged.token.here"}, 401,
                       "token_invalid")


async def test_given_a_full_monthly_cap_when_one_more_then_refused_with_what_is_left(svc: InProcess) -> None:
    # HELP_MOVE: 10 points per household, cap 60 per month (李国强 has none yet this month)
    r = await svc.post("/declarations", item(subject_id="p-li", rule_code="HELP_MOVE", quantity=5), RECORDER)
    assert r.status_code == 201, r.text
    answer = await then_refused(svc, "/declarations", item(subject_id="p-li", rule_code="HELP_MOVE", quantity=2),
                                RECORDER, 422, "monthly_cap_exceeded")
    assert answer["detail"] == {"used": 50, "cap": 60, "remaining": 10}
    r = await svc.post("/declarations", item(subject_id="p-li", rule_code="HELP_MOVE", quantity=1), RECORDER)
    assert r.status_code == 201, r.text  # exactly at the cap is fine
    # the cap is per month: October still has room
    r = await svc.post("/declarations", item(subject_id="p-li", rule_code="HELP_MOVE", occurred_on="2026-10-20"),
                       RECORDER)
    assert r.status_code == 201, r.text


async def test_given_a_moved_out_subject_when_declaring_after_then_refused(svc: InProcess) -> None:
    r = await svc.post("/subjects/p-sun/move-out", {"moved_out_on": "2026-11-20", "reason": "迁往县城"}, RECORDER)
    assert r.status_code == 201, r.text
    cleaning = item(subject_id="p-sun", rule_code="CLEANING_DUTY")
    await then_refused(svc, "/declarations", cleaning | {"occurred_on": "2026-11-21"}, RECORDER, 422,
                       "subject_inactive")
    r = await svc.post("/declarations", cleaning | {"occurred_on": "2026-11-19"}, RECORDER)
    assert r.status_code == 201, r.text  # before moving out: still his


async def test_given_a_subject_of_another_community_when_declared_here_then_refused(svc: InProcess) -> None:
    r = await svc.post("/communities", {"community_id": "c-hz02", "name": "第二社区"}, tok("a", Role.county_admin, "*"))
    assert r.status_code == 201, r.text
    r = await svc.post("/subjects", {"community_id": "c-hz02", "subjects": [
        {"subject_id": "q-1", "kind": "person", "name": "外社区居民", "categories": ["resident"], "gender": "male",
         "registered_on": "2026-10-01"}]}, tok("a", Role.county_admin, "*"))
    assert r.status_code == 201, r.text
    await then_refused(svc, "/declarations", item(subject_id="q-1", rule_code="LAW_STUDY"), RECORDER, 422,
                       "subject_not_in_community")


async def test_given_the_same_idempotency_key_twice_then_one_event_and_the_same_answer(svc: InProcess) -> None:
    headers = RECORDER | {"idempotency-key": f"k-{uuid.uuid4()}"}
    body = item(subject_id="p-xu", rule_code="LAW_STUDY")
    before = await svc.events()
    first = await svc.http.post("/declarations", json=body, headers=headers)
    again = await svc.http.post("/declarations", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers.get("idempotent-replay") == "true"
    assert await svc.events() == before + 1
    changed = await svc.http.post("/declarations", json=body | {"quantity": 2}, headers=headers)
    assert changed.status_code == 409 and changed.json()["error"] == "idempotency_key_reused"
    assert await svc.events() == before + 1


async def test_given_a_refused_command_when_retried_fixed_with_the_same_key_then_accepted(svc: InProcess) -> None:
    headers = RECORDER | {"idempotency-key": f"k-{uuid.uuid4()}"}
    bad = await svc.http.post("/declarations", json=item(subject_id="p-he", rule_code="GOOD_DEED"), headers=headers)
    assert bad.status_code == 422
    good = await svc.http.post("/declarations", json=item(subject_id="p-he", rule_code="GOOD_DEED",
                                                          evidence=["photo:1.jpg"]), headers=headers)
    assert good.status_code == 201, good.text


async def test_given_the_clock_in_shanghai_when_utc_is_still_yesterday_then_today_counts(svc: InProcess) -> None:
    svc.set_now(dt.datetime(2026, 11, 30, 16, 30, tzinfo=dt.UTC))  # 00:30 on 1 December in Asia/Shanghai
    try:
        r = await svc.post("/declarations", item(subject_id="p-xu", occurred_on="2026-12-01", rule_code="LAW_STUDY"),
                           RECORDER)
        assert r.status_code == 201, r.text
    finally:
        svc.set_now(NOW)


async def test_given_a_bad_subject_in_an_activity_then_nobody_is_recorded(svc: InProcess) -> None:
    body = {"community_id": COMMUNITY, "title": "清理小区绿化带", "rule_code": "VOLUNTARY_LABOUR", "quantity": 1,
            "occurred_on": "2026-11-15", "subject_ids": ["p-luo", "p-nobody", "p-he"]}
    answer = await then_refused(svc, "/activities", body, RECORDER, 422, "some_subjects_refused")
    assert [r["subject_id"] for r in answer["detail"]["refused"]] == ["p-nobody"]
    await then_refused(svc, "/activities", body | {"subject_ids": ["p-luo", "p-luo"]}, RECORDER, 422,
                       "duplicate_subjects")
    await then_refused(svc, "/activities", body | {"subject_ids": ["p-luo"]}, tok("d", Role.declarant, COMMUNITY,
                                                                                  "p-luo"), 403, "forbidden_role")


async def test_given_a_bad_work_report_line_then_no_worker_is_credited(svc: InProcess) -> None:
    body = {"community_id": COMMUNITY, "enterprise": "某发制品公司", "rule_code": "PARK_WORK",
            "occurred_on": "2026-11-20", "lines": [{"subject_id": "p-chen", "quantity": 5},
                                                   {"subject_id": "p-zhao", "quantity": 5}]}
    answer = await then_refused(svc, "/work-reports", body, SITE, 422, "some_subjects_refused")
    assert answer["detail"]["refused"][0]["error"] == "rule_not_for_category"


async def test_given_a_need_when_completed_twice_or_untaken_then_refused(svc: InProcess) -> None:
    r = await svc.post("/needs", {"community_id": COMMUNITY, "title": "帮 5 栋李奶奶搬家具", "rule_code": "HELP_MOVE"},
                       RECORDER)
    assert r.status_code == 201, r.text
    need = r.json()["need_id"]
    await then_refused(svc, f"/needs/{need}/complete", {"occurred_on": "2026-11-22"}, RECORDER, 409, "need_not_taken")
    await then_refused(svc, f"/needs/{need}/take", {"subject_id": "p-he"}, OTHER_RECORDER, 403, "forbidden_community")
    await then_refused(svc, "/needs/no-such-need/take", {"subject_id": "p-he"}, RECORDER, 404, "unknown_need")
