"""A scripted month for one community: several subjects per category, every channel, the ledger
totals per subject match a hand count, each line shows its channel and who entered it.

Among them the seed's example: building head 徐科品, 180 points in November from policy talks,
helping families move furniture and hygiene supervision.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from services.declarations.ledger import LedgerProjection
from shared import projection as projections
from shared.auth import Role
from shared.events.review import ItemRejected, ItemVerified
from shared.projection import table_digest
from tests.integration.declarations.harness import (
    ADMIN,
    COMMUNITY,
    NOW,
    RECORDER,
    SITE,
    SUPERVISOR,
    fresh_settings,
    key,
    publish_review,
    register_roster,
    tok,
)
from tests.support.services import RunningService, running_service

pytestmark = pytest.mark.e2e


def me(sid: str, *family: str) -> dict[str, str]:
    return tok(sid, Role.declarant, COMMUNITY, sid, *family)


@contextlib.contextmanager
def service_at(settings: Any, now: str) -> Any:
    """The declarations service as a process whose clock reads ``now`` (DECLARATIONS_NOW)."""
    with contextlib.ExitStack() as stack:
        mp = stack.enter_context(pytest.MonkeyPatch.context())
        mp.setenv("DECLARATIONS_NOW", now)
        svc = stack.enter_context(running_service("declarations", settings))
        yield svc


@dataclass
class Month:
    svc: RunningService
    http: httpx.AsyncClient
    lines: list[dict[str, Any]]  # what the script entered: (item ids, expected channel, actor, points)


# (path, auth, body, expected points per subject) — the month as a recorder's office would live it.
def item(subject: str, rule: str, qty: int, day: int, channel: str, **extra: Any) -> dict[str, Any]:
    return {"community_id": COMMUNITY, "subject_id": subject, "rule_code": rule, "quantity": qty,
            "occurred_on": f"2026-11-{day:02d}", "channel": channel} | extra


def deduction(subject: str, rule: str, qty: int, day: int, reason: str) -> dict[str, Any]:
    return {"community_id": COMMUNITY, "subject_id": subject, "rule_code": rule, "quantity": qty,
            "occurred_on": f"2026-11-{day:02d}", "reason": reason, "evidence": [f"photo:{subject}-{day}.jpg"]}


PHOTO = {"evidence": ["photo:hz01/2026-11/0001.jpg"]}
DECLARATIONS = [
    # 徐科品: 宣讲搬迁政策 by himself on the app and WeChat, and orally through the recorder (60)
    (me("p-xu"), item("p-xu", "POLICY_TALK", 2, 3, "app", description="3 栋宣讲搬迁后续政策"), "p-xu"),
    (me("p-xu"), item("p-xu", "POLICY_TALK", 2, 10, "wechat"), "p-xu"),
    (RECORDER, item("p-xu", "POLICY_TALK", 2, 17, "oral"), "rec-wang"),
    # 徐科品: 楼栋环境卫生监督 over QQ and the community's WeChat official account (60)
    (me("p-xu"), item("p-xu", "HYGIENE_SUPERVISION", 6, 5, "qq"), "p-xu"),
    (SITE, item("p-xu", "HYGIENE_SUPERVISION", 6, 20, "official_account"), "site-hz01-oa"),
    (SUPERVISOR, item("p-ji", "CADRE_TASK", 2, 6, "oral"), "sup-liu"),
    (RECORDER, item("p-ji", "JOB_REFERRAL", 3, 9, "wechat"), "rec-wang"),
    (me("p-luo"), item("p-luo", "VOLUNTEER_HOURS", 4, 14, "app"), "p-luo"),
    (RECORDER, item("p-yang", "BUILDING_PATROL", 5, 11, "oral"), "rec-wang"),
    (me("p-yang"), item("p-yang", "MEDIATE_DISPUTE", 1, 13, "qq"), "p-yang"),
    (SITE, item("p-zhang", "LAW_STUDY", 1, 16, "official_account"), "site-hz01-oa"),
    (me("p-zhang", "f-zhang"), item("f-zhang", "SCHOOLING", 2, 2, "app"), "p-zhang"),  # the family's contact
    (RECORDER, item("f-zhang", "CLEAN_HOME", 1, 25, "oral"), "rec-wang"),
    (RECORDER, item("f-wang", "FAMILY_VIRTUE", 1, 18, "oral"), "rec-wang"),
    (me("p-chen"), item("p-chen", "STABLE_JOB", 1, 28, "app", **PHOTO), "p-chen"),
    (RECORDER, item("p-li", "ORGANISE_TRAINING", 1, 7, "oral", **PHOTO), "rec-wang"),
    (RECORDER, item("p-li", "HANDLE_AFFAIRS", 4, 19, "wechat"), "rec-wang"),
    (me("p-he"), item("p-he", "VOLUNTEER_HOURS", 10, 21, "wechat"), "p-he"),
    (RECORDER, item("p-zhao", "CLEANING_DUTY", 20, 29, "oral"), "rec-wang"),
    (SUPERVISOR, item("p-sun", "CLEANING_DUTY", 18, 29, "oral"), "sup-liu"),
    (SITE, item("o-br1", "ORGANISE_TRAINING", 2, 23, "official_account", **PHOTO), "site-hz01-oa"),
    (RECORDER, item("o-br2", "CADRE_TASK", 1, 24, "oral"), "rec-wang"),
    (RECORDER, item("o-women", "ORGANISE_TRAINING", 1, 12, "oral", **PHOTO), "rec-wang"),
    (RECORDER, item("o-youth", "HELP_HARDSHIP", 2, 26, "qq"), "rec-wang"),
]
DEDUCTIONS = [
    (SUPERVISOR, deduction("p-yang", "LITTERING", 1, 15, "楼道堆放杂物，劝导后仍未清理"), "sup-liu"),
    (RECORDER, deduction("p-wang", "UNCIVIL", 1, 22, "高空抛物"), "rec-wang"),
]
ACTIVITIES = [  # one organiser's record, many subjects
    {"title": "集中搬迁日：帮群众搬家具", "rule_code": "HELP_MOVE", "quantity": 3, "occurred_on": "2026-11-12",
     "subject_ids": ["p-xu", "p-luo", "p-he"]},
    {"title": "“三会一课”主题党日", "rule_code": "PARTY_STUDY", "quantity": 1, "occurred_on": "2026-11-04",
     "subject_ids": ["p-ji", "p-luo", "o-br1"]},
    {"title": "清理小区绿化带义务劳动", "rule_code": "VOLUNTARY_LABOUR", "quantity": 1, "occurred_on": "2026-11-08",
     "subject_ids": ["p-zhang", "p-wang", "p-chen", "p-he", "p-zhao"]},
]
WORK_REPORT = {"enterprise": "赫章县某发制品有限公司", "rule_code": "PARK_WORK", "occurred_on": "2026-11-27",
               "lines": [{"subject_id": "p-wang", "quantity": 20}, {"subject_id": "p-chen", "quantity": 22}]}

# The hand count (seed rules in data/rules.json: points_per_unit × quantity × weight).
EXPECTED = {
    "p-xu": 20 + 20 + 20 + 30 + 30 + 30 + 30,  # policy talks 60, moving furniture 60, hygiene supervision 60
    "p-ji": 20 + 30 + 5,  # cadre task 2×10; job referral 3×5×2; party study
    "p-luo": 8 + 30 + 5,  # volunteer hours 4×2; moving day; party study
    "p-yang": 15 + 10 - 5,  # patrols 5×3; a mediation; littering
    "p-zhang": 2 + 5,  # law study; voluntary labour
    "f-zhang": 20 + 5,  # two children in school; clean home
    "f-wang": 10,
    "p-wang": 40 + 5 - 10,  # 20 work days × 1 × 2; voluntary labour; throwing things from height
    "p-chen": 20 + 44 + 5,  # stable job 10×2; 22 work days × 2; voluntary labour
    "p-li": 20 + 20,  # one training (10×2); four affairs handled
    "p-he": 20 + 30 + 5,  # 10 volunteer hours; moving day; voluntary labour
    "p-zhao": 60 + 5,  # 20 clean days; voluntary labour
    "p-sun": 54,
    "o-br1": 40 + 5,  # two trainings (10×2 each); party study
    "o-br2": 10,
    "o-women": 20,
    "o-youth": 20,
}
XU_HAND_COUNT = 180


async def run_the_month(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []

    async def post(path: str, auth: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        r = await http.post(path, json=body, headers=auth | key())
        assert r.status_code == 201, f"{path} {body}: {r.text}"
        answer: dict[str, Any] = r.json()
        return answer

    for auth, body, actor in DECLARATIONS:
        a = await post("/declarations", auth, body)
        lines.append({"item_id": a["item_id"], "channel": body["channel"], "entered_by": actor, "points": a["points"]})
    for auth, body, actor in DEDUCTIONS:
        a = await post("/deductions", auth, body)
        lines.append({"item_id": a["item_id"], "channel": "office", "entered_by": actor, "points": a["points"]})
    for activity in ACTIVITIES:
        a = await post("/activities", RECORDER, {"community_id": COMMUNITY} | activity)
        lines += [{"item_id": i["item_id"], "channel": "activity", "entered_by": "rec-wang", "points": i["points"]}
                  for i in a["items"]]
    a = await post("/work-reports", SITE, {"community_id": COMMUNITY} | WORK_REPORT)
    lines += [{"item_id": i["item_id"], "channel": "enterprise", "entered_by": "site-hz01-oa", "points": i["points"]}
              for i in a["items"]]
    # the needs board: the office posts a need, 徐科品 takes it on his phone, the recorder confirms it is done
    need = (await post("/needs", RECORDER, {"community_id": COMMUNITY, "title": "帮 3 栋三户新搬迁群众搬家具",
                                            "rule_code": "HELP_MOVE", "quantity": 3}))["need_id"]
    await post(f"/needs/{need}/take", me("p-xu"), {"subject_id": "p-xu"})
    done = await post(f"/needs/{need}/complete", RECORDER, {"occurred_on": "2026-11-08",
                                                           "evidence": ["photo:move-3.jpg"]})
    lines.append({"item_id": done["item_id"], "channel": "needs_board", "entered_by": "rec-wang", "points": 30})
    return lines


@pytest.fixture(scope="module")
async def month(stack: tuple[str, str]) -> AsyncIterator[Month]:
    settings = await fresh_settings(*stack)
    with service_at(settings, NOW.isoformat()) as svc:
        async with httpx.AsyncClient(base_url=svc.url, timeout=30) as http:
            await register_roster(http)
            lines = await run_the_month(http)
            await ledger_settles(http, len(lines))
            yield Month(svc, http, lines)


async def ledger_settles(http: httpx.AsyncClient, count: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = await http.get("/ledger", params={"community_id": COMMUNITY, "month": "2026-11"}, headers=RECORDER)
        body: dict[str, Any] = r.json()
        if r.status_code == 200 and body["count"] >= count:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"ledger has {body.get('count')} of {count} items after {timeout}s")
        await asyncio.sleep(0.1)


async def test_given_the_month_then_ledger_totals_per_subject_match_the_hand_count(month: Month) -> None:
    ledger = await ledger_settles(month.http, len(month.lines))
    totals = {t["subject_id"]: t["points"] for t in ledger["totals"]}
    assert totals == EXPECTED
    assert totals["p-xu"] == XU_HAND_COUNT
    xu = next(t for t in ledger["totals"] if t["subject_id"] == "p-xu")
    assert xu["subject_name"] == "徐科品"
    assert ledger["points"] == sum(EXPECTED.values())


async def test_given_the_month_then_every_line_shows_its_channel_actor_rule_and_dimension(month: Month) -> None:
    ledger = await ledger_settles(month.http, len(month.lines))
    by_id = {i["item_id"]: i for i in ledger["items"]}
    assert len(by_id) == len(month.lines)
    for line in month.lines:
        got = by_id[line["item_id"]]
        assert (got["channel"], got["entered_by"], got["points"]) == (line["channel"], line["entered_by"],
                                                                     line["points"])
        assert got["subject_name"] and got["rule_title"] and got["dimension"] and got["declared_by"]
        assert got["status"] == "submitted"
    assert {i["channel"] for i in ledger["items"]} == {"app", "wechat", "qq", "official_account", "oral", "office",
                                                       "activity", "needs_board", "enterprise"}
    oral_xu = next(i for i in ledger["items"] if i["subject_id"] == "p-xu" and i["channel"] == "oral")
    assert (oral_xu["entered_by"], oral_xu["declared_by"]) == ("rec-wang", "p-xu")  # the recorder typed his words
    family = next(i for i in ledger["items"] if i["subject_id"] == "f-zhang" and i["channel"] == "app")
    assert family["declared_by"] == "p-zhang"  # the family's contact declared it
    categories = {i["category"] for i in ledger["items"]}
    assert len(categories) == 10  # every subject category earned something this month


@pytest.mark.parametrize(("filters", "expected_points"), [
    ({"subject_id": "p-xu"}, 180),
    ({"subject_id": "p-xu", "rule_code": "HELP_MOVE"}, 60),
    ({"channel": "activity"}, 3 * 30 + 3 * 5 + 5 * 5),
    ({"channel": "office"}, -15),
    ({"channel": "enterprise"}, 84),
    ({"rule_code": "POLICY_TALK"}, 60),
    ({"month": "2026-10"}, 0),
])
async def test_given_filters_then_the_ledger_narrows_down(month: Month, filters: dict[str, str],
                                                           expected_points: int) -> None:
    r = await month.http.get("/ledger", params={"community_id": COMMUNITY} | filters, headers=RECORDER)
    assert r.status_code == 200, r.text
    assert r.json()["points"] == expected_points


async def test_given_a_declarant_then_the_ledger_shows_only_its_own_items(month: Month) -> None:
    r = await month.http.get("/ledger", params={"community_id": COMMUNITY}, headers=me("p-xu"))
    assert {i["subject_id"] for i in r.json()["items"]} == {"p-xu"}
    r = await month.http.get("/ledger", params={"community_id": "c-hz02"}, headers=RECORDER)
    assert r.status_code == 403 and r.json()["error"] == "forbidden_community"


async def test_given_the_month_then_the_csv_export_opens_in_excel_with_the_same_lines(month: Month) -> None:
    r = await month.http.get("/ledger.csv", params={"community_id": COMMUNITY, "month": "2026-11"}, headers=RECORDER)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8 Chinese
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == len(month.lines)
    assert sum(int(row["积分"]) for row in rows) == sum(EXPECTED.values())
    assert {row["主体"] for row in rows if row["主体编号"] == "p-xu"} == {"徐科品"}
    assert all(row["渠道"] and row["录入人"] and row["积分项目"] for row in rows)
    assert {row["渠道"] for row in rows} >= {"口头", "微信", "QQ", "社区微信公众平台", "手机党建积分APP", "活动"}
    assert {row["状态"] for row in rows} <= {"待审核", "已核实", "已驳回"}  # words, not codes


async def test_given_review_decisions_then_the_ledger_shows_each_items_status(month: Month) -> None:
    verified, rejected = month.lines[0]["item_id"], month.lines[1]["item_id"]
    await publish_review(month.svc.settings, COMMUNITY, [
        ItemVerified(item_id=verified, community_id=COMMUNITY, month="2026-11"),
        ItemRejected(item_id=rejected, community_id=COMMUNITY, month="2026-11", reason="与 11-03 重复"),
    ])
    deadline = time.monotonic() + 20
    while True:
        r = await month.http.get("/ledger", params={"community_id": COMMUNITY, "subject_id": "p-xu"}, headers=RECORDER)
        status = {i["item_id"]: i["status"] for i in r.json()["items"]}
        if status[verified] == "verified" and status[rejected] == "rejected":
            break
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.1)
    r = await month.http.get("/ledger", params={"community_id": COMMUNITY, "status": "rejected"}, headers=RECORDER)
    assert [i["item_id"] for i in r.json()["items"]] == [rejected]


async def test_given_the_ledger_when_rebuilt_from_the_log_then_it_is_byte_identical(
    month: Month, stack: tuple[str, str]
) -> None:
    """A second ledger, built from offset 0 into an empty database, equals the live one row for row."""
    await asyncio.sleep(1.0)  # let the live projection finish the review events above
    tables = (("ledger", "item_id"), ("ledger_review", "item_id"), ("ledger_subjects", "subject_id"))
    live = await asyncpg.connect(month.svc.settings.database_url)
    try:
        before = [await table_digest(live, t, o) for t, o in tables]
    finally:
        await live.close()
    elsewhere = await fresh_settings(*stack)
    replica = month.svc.settings.model_copy(update={"database_url": elsewhere.database_url})
    pool = await asyncpg.create_pool(replica.database_url, min_size=1, max_size=4)
    try:
        async with pool.acquire() as conn:
            await projections.migrate(conn, LedgerProjection())
        built = await projections.rebuild(pool, LedgerProjection(), replica)
        assert built.events > len(month.lines)
        async with pool.acquire() as conn:
            after = [await table_digest(conn, f"{built.schema}.{t}", o) for t, o in tables]
    finally:
        await pool.close()
    assert after == before


async def test_given_the_subject_search_and_rules_then_the_recorder_page_contract_holds(month: Month) -> None:
    r = await month.http.get("/subjects", params={"community_id": COMMUNITY, "q": "徐"}, headers=RECORDER)
    [xu] = r.json()["items"]
    assert (xu | {"categories": sorted(xu["categories"])}).items() >= {
        "subject_id": "p-xu", "name": "徐科品", "categories": ["building_head", "party_member"],
        "community_id": COMMUNITY, "status": "active"}.items()
    r = await month.http.get("/rules", params={"category": "building_head"}, headers=RECORDER)
    codes = {rule["code"] for rule in r.json()["rules"]}
    assert {"POLICY_TALK", "HELP_MOVE", "HYGIENE_SUPERVISION"} <= codes
    assert set(r.json()["rules"][0]) >= {"code", "title", "dimension", "points_per_unit", "unit", "monthly_cap",
                                         "evidence_required", "recorded_by"}
    r = await month.http.get("/subjects", params={"community_id": COMMUNITY}, headers=ADMIN)
    assert len(r.json()["items"]) == len(EXPECTED)
