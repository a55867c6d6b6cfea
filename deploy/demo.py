"""Demo data for ``make up``: one relocation community, a whole month lived through every channel.

Last month (Asia/Shanghai): the roster, declarations by app, WeChat, QQ, the official account
and orally through the recorder, deductions, an activity, the needs board and an enterprise work
report — among them the seed's building head 徐科品 with 180 points — then verified by a
recorder, certified by the secretary and a second leading-group member, and posted for public
notice. This month: a few items still waiting for review.

Safe to run again: every command carries a fixed idempotency key, so a repeat changes nothing.
"""

from __future__ import annotations

import calendar
import datetime as dt
import os
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from deploy import demo_exchange, demo_ranking
from shared.auth import Principal, Role, issue_token
from shared.settings import get_settings

COMMUNITY = "c-hz01"
DECLARATIONS_URL = os.environ.get("DECLARATIONS_URL", "http://127.0.0.1:8101")
REVIEW_URL = os.environ.get("REVIEW_URL", "http://127.0.0.1:8102")


# Issued as of the first of this month, so a rerun signs the very same tokens.
_ISSUED = dt.datetime.now(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def token(sub: str, role: Role, *subjects: str, community: str = COMMUNITY, name: str = "") -> str:
    return issue_token(Principal(sub=sub, role=role, community=community, subject_ids=subjects, name=name),
                       days=120, now=_ISSUED)


STAFF = {
    "county_admin": token("county-admin", Role.county_admin, community="*", name="县管理员"),
    "recorder": token("rec-wang", Role.recorder, name="王记录员"),
    "reviewer": token("rec-zhou", Role.recorder, name="周记录员"),
    "supervisor": token("sup-liu", Role.supervisor, name="刘监督员"),
    "site": token("site-hz01-oa", Role.site, name="社区微信公众平台"),
    "secretary": token("sec-long", Role.secretary, name="龙书记（联合党委第一责任人）"),
    "leading_group": token("lg-tian", Role.leading_group, name="田委员（领导小组成员）"),
    "resident_xu": token("p-xu", Role.declarant, "p-xu", name="徐科品"),
}

UNITS = [
    ("jc", "joint_committee", "安置社区联合党委", None),
    ("gb1", "general_branch", "第一党总支", "jc"),
    ("br1", "branch", "第一党支部", "gb1"),
    ("br2", "branch", "第二党支部", "gb1"),
    ("grp1", "group", "第一党小组", "br1"),
    ("bld-3", "building", "3 栋", "br1"),
    ("ws-hair", "workshop", "发制品车间", "br2"),
    ("vt-1", "volunteer_team", "第一志愿服务队", "br2"),
]


def person(sid: str, name: str, gender: str, *cats: str, family: str | None = None,
           units: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"subject_id": sid, "kind": "person", "name": name, "categories": list(cats), "gender": gender,
            "family_id": family, "units": list(units)}


SUBJECTS = [
    {"subject_id": "o-br1", "kind": "organisation", "name": "第一党支部", "categories": ["party_organization"]},
    {"subject_id": "o-br2", "kind": "organisation", "name": "第二党支部", "categories": ["party_organization"]},
    {"subject_id": "o-women", "kind": "organisation", "name": "妇联工作站", "categories": ["mass_organization"]},
    {"subject_id": "f-zhang", "kind": "family", "name": "张家", "categories": ["family"], "contact_id": "p-zhang"},
    {"subject_id": "f-wang", "kind": "family", "name": "王家", "categories": ["family"], "contact_id": "p-wang"},
    person("p-xu", "徐科品", "male", "party_member", "building_head", units=("bld-3", "grp1")),
    person("p-ji", "吉正学", "male", "party_member", "community_cadre"),
    person("p-luo", "罗开英", "female", "party_member", "volunteer", units=("vt-1",)),
    person("p-yang", "杨红泽", "male", "building_head"),
    person("p-zhang", "张阿妹", "female", "resident", family="f-zhang"),
    person("p-wang", "王老三", "male", "resident", "employed", family="f-wang", units=("ws-hair",)),
    person("p-chen", "陈小红", "female", "employed", units=("ws-hair",)),
    person("p-li", "李国强", "male", "community_cadre"),
    person("p-he", "何志远", "male", "volunteer", units=("vt-1",)),
    person("p-zhao", "赵桂兰", "female", "property_staff"),
]

# (who enters it, subject, rule, quantity, day of month, channel)
MONTH = [
    ("resident_xu", "p-xu", "POLICY_TALK", 2, 3, "app"),  # 徐科品: policy talks 60
    ("resident_xu", "p-xu", "POLICY_TALK", 2, 10, "wechat"),
    ("recorder", "p-xu", "POLICY_TALK", 2, 17, "oral"),
    ("resident_xu", "p-xu", "HYGIENE_SUPERVISION", 6, 5, "qq"),  # hygiene supervision 60
    ("site", "p-xu", "HYGIENE_SUPERVISION", 6, 20, "official_account"),
    ("supervisor", "p-ji", "CADRE_TASK", 2, 6, "oral"),
    ("recorder", "p-ji", "JOB_REFERRAL", 3, 9, "wechat"),
    ("recorder", "p-yang", "BUILDING_PATROL", 5, 11, "oral"),
    ("site", "p-zhang", "LAW_STUDY", 1, 16, "official_account"),
    ("recorder", "f-wang", "FAMILY_VIRTUE", 1, 18, "oral"),
    ("recorder", "p-li", "HANDLE_AFFAIRS", 4, 19, "wechat"),
    ("recorder", "p-zhao", "CLEANING_DUTY", 20, 27, "oral"),
    ("recorder", "o-br2", "CADRE_TASK", 1, 24, "oral"),
    ("recorder", "p-he", "VOLUNTEER_HOURS", 10, 21, "wechat"),
]
ACTIVITY = {"title": "集中搬迁日：帮群众搬家具", "rule_code": "HELP_MOVE", "quantity": 3, "day": 12,
            "subject_ids": ["p-xu", "p-luo", "p-he"]}  # 徐科品: 30 here …
NEED = {"title": "帮 3 栋三户新搬迁群众搬家具", "rule_code": "HELP_MOVE", "quantity": 3, "day": 8}  # … and 30 here
WORK_REPORT = {"enterprise": "赫章县某发制品有限公司", "rule_code": "PARK_WORK", "day": 26,
               "lines": [{"subject_id": "p-wang", "quantity": 20}, {"subject_id": "p-chen", "quantity": 22}]}
DEDUCTION = ("supervisor", "p-yang", "LITTERING", 1, 15, "楼道堆放杂物，劝导后仍未清理")
THIS_MONTH = [
    ("resident_xu", "p-xu", "POLICY_TALK", 1, 1, "app"),
    ("recorder", "p-luo", "VOLUNTEER_HOURS", 3, 1, "oral"),
]


class Demo:
    def __init__(self) -> None:
        self.decl = httpx.Client(base_url=DECLARATIONS_URL, timeout=30)
        self.review = httpx.Client(base_url=REVIEW_URL, timeout=30)
        today = dt.datetime.now(ZoneInfo(get_settings().timezone)).date()
        first_of_this = today.replace(day=1)
        last_month_end = first_of_this - dt.timedelta(days=1)
        self.today = today
        self.last = last_month_end.strftime("%Y-%m")
        self.this = today.strftime("%Y-%m")
        self.last_first = last_month_end.replace(day=1)
        self.last_days = calendar.monthrange(last_month_end.year, last_month_end.month)[1]

    def day_last(self, day: int) -> str:
        return self.last_first.replace(day=min(day, self.last_days)).isoformat()

    def post(self, http: httpx.Client, path: str, who: str, body: dict[str, Any], key: str) -> dict[str, Any]:
        r = http.post(path, json=body, headers={"authorization": f"Bearer {STAFF[who]}",
                                                 "idempotency-key": f"demo-{self.last}-{key}"})
        if r.status_code not in (200, 201):
            raise SystemExit(f"demo: {path} refused ({r.status_code}): {r.text}")
        return r.json()  # type: ignore[no-any-return]

    def roster(self) -> None:
        self.post(self.decl, "/communities", "county_admin",
                  {"community_id": COMMUNITY, "name": "赫章县示例易地扶贫搬迁安置社区"}, "community")
        for unit_id, kind, name, parent in UNITS:
            self.post(self.decl, "/org-units", "county_admin",
                      {"community_id": COMMUNITY, "unit_id": f"{COMMUNITY}-{unit_id}", "kind": kind, "name": name,
                       "parent_id": f"{COMMUNITY}-{parent}" if parent else None}, f"unit-{unit_id}")
        registered = dt.date(self.last_first.year - 1, 12, 1)  # before this year: ranked for the whole year
        subjects = [s | {"registered_on": registered.isoformat(),
                         "units": [f"{COMMUNITY}-{u}" for u in s.get("units", [])]} for s in SUBJECTS]
        self.post(self.decl, "/subjects", "county_admin", {"community_id": COMMUNITY, "subjects": subjects},
                  "subjects")

    def last_month(self) -> int:
        count = 0
        for n, (who, subject, rule, qty, day, channel) in enumerate(MONTH):
            self.post(self.decl, "/declarations", who,
                      {"community_id": COMMUNITY, "subject_id": subject, "rule_code": rule, "quantity": qty,
                       "occurred_on": self.day_last(day), "channel": channel}, f"item-{n}")
            count += 1
        who, subject, rule, qty, day, reason = DEDUCTION
        self.post(self.decl, "/deductions", who,
                  {"community_id": COMMUNITY, "subject_id": subject, "rule_code": rule, "quantity": qty,
                   "occurred_on": self.day_last(day), "reason": reason, "evidence": ["photo:demo-litter.jpg"]},
                  "deduction")
        count += 1
        a = ACTIVITY
        self.post(self.decl, "/activities", "recorder",
                  {"community_id": COMMUNITY, "title": a["title"], "rule_code": a["rule_code"],
                   "quantity": a["quantity"], "occurred_on": self.day_last(a["day"]),  # type: ignore[arg-type]
                   "subject_ids": a["subject_ids"]}, "activity")
        count += len(a["subject_ids"])  # type: ignore[arg-type]
        w = WORK_REPORT
        self.post(self.decl, "/work-reports", "site",
                  {"community_id": COMMUNITY, "enterprise": w["enterprise"], "rule_code": w["rule_code"],
                   "occurred_on": self.day_last(w["day"]), "lines": w["lines"]}, "work-report")  # type: ignore[arg-type]
        count += len(w["lines"])  # type: ignore[arg-type]
        need = self.post(self.decl, "/needs", "recorder",
                         {"community_id": COMMUNITY, "title": NEED["title"], "rule_code": NEED["rule_code"],
                          "quantity": NEED["quantity"]}, "need")["need_id"]
        self.post(self.decl, f"/needs/{need}/take", "resident_xu", {"subject_id": "p-xu"}, "need-take")
        self.post(self.decl, f"/needs/{need}/complete", "recorder",
                  {"occurred_on": self.day_last(NEED["day"]), "evidence": ["photo:demo-move.jpg"]},  # type: ignore[arg-type]
                  "need-done")
        return count + 1

    def this_month(self) -> None:
        for n, (who, subject, rule, qty, day, channel) in enumerate(THIS_MONTH):
            self.post(self.decl, "/declarations", who,
                      {"community_id": COMMUNITY, "subject_id": subject, "rule_code": rule, "quantity": qty,
                       "occurred_on": self.today.replace(day=min(day, self.today.day)).isoformat(),
                       "channel": channel}, f"now-{self.this}-{n}")

    def certify_last_month(self, expected: int) -> dict[str, Any]:
        items = self.wait_for_review_items(expected)
        for item in items:
            if item["status"] == "submitted":
                self.post(self.review, f"/items/{item['item_id']}/verification", "reviewer",
                          {"decision": "verified", "note": "材料齐全"}, f"verify-{item['item_id']}")
        if not self.month().get("certified_at"):  # a rerun finds it certified already
            digest = self.list_to_sign(len(items))
            for who in ("secretary", "leading_group"):  # each member signs from their own session
                self.post(self.review, "/certifications", who,
                          {"community_id": COMMUNITY, "month": self.last, "digest": digest}, f"sign-{who}")
        self.post(self.review, "/notices", "secretary", {"community_id": COMMUNITY, "month": self.last}, "notice")
        deadline = time.monotonic() + 30
        while True:  # the board is a projection: wait until it shows the certified month
            month = self.month()
            if (month.get("complete") and month.get("notices")) or time.monotonic() > deadline:
                return month
            time.sleep(0.2)

    def month(self) -> dict[str, Any]:
        r = self.review.get(f"/months/{COMMUNITY}/{self.last}",
                            headers={"authorization": f"Bearer {STAFF['secretary']}"})
        return (r.json().get("month") if r.status_code == 200 else None) or {}

    def list_to_sign(self, expected: int, timeout: float = 60) -> str:
        """The digest of last month's list once every verification shows on the board."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.review.get(f"/certifications/{COMMUNITY}/{self.last}",
                                headers={"authorization": f"Bearer {STAFF['secretary']}"})
            body: dict[str, Any] = r.json() if r.status_code == 200 else {}
            if body.get("count") == expected and body.get("waiting") == 0:
                return str(body["digest"])
            if time.monotonic() > deadline:
                raise SystemExit(f"demo: the list to sign shows {body.get('count')} of {expected} items")
            time.sleep(0.3)

    def wait_for_review_items(self, expected: int, timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            r = self.review.get("/items", params={"community_id": COMMUNITY, "month": self.last},
                                headers={"authorization": f"Bearer {STAFF['secretary']}"})
            items: list[dict[str, Any]] = r.json().get("items", []) if r.status_code == 200 else []
            if len(items) >= expected:
                return items
            if time.monotonic() > deadline:
                raise SystemExit(f"demo: the review service saw {len(items)} of {expected} items after {timeout}s")
            time.sleep(0.3)

    def xu_total(self) -> int:
        deadline = time.monotonic() + 30
        while True:
            r = self.decl.get("/ledger", params={"community_id": COMMUNITY, "month": self.last, "subject_id": "p-xu"},
                              headers={"authorization": f"Bearer {STAFF['recorder']}"})
            totals = r.json().get("totals", []) if r.status_code == 200 else []
            total = sum(t["points"] for t in totals)
            if total >= 180 or time.monotonic() > deadline:
                return total
            time.sleep(0.2)


def main() -> None:
    demo = Demo()
    demo.roster()
    expected = demo.last_month()
    demo.this_month()
    month = demo.certify_last_month(expected)
    xu = demo.xu_total()
    tokens = Path(os.environ.get("STACK_DIR", ".stack")) / "demo-tokens.txt"
    tokens.parent.mkdir(parents=True, exist_ok=True)
    tokens.touch(mode=0o600)
    tokens.chmod(0o600)  # signed tokens: owner only
    tokens.write_text("".join(f"{k}\t{v}\n" for k, v in STAFF.items()))
    print(f"demo: community {COMMUNITY}, {demo.last}: {expected} items, 徐科品 {xu} points; "
          f"certified: {month.get('count', 0)} items, {month.get('total', 0)} points, "
          f"notice on {len(month.get('notices', []))} channels; {demo.this}: {len(THIS_MONTH)} items in review")
    print(f"  recorder's page      {DECLARATIONS_URL}/recorder?token={STAFF['recorder']}")
    print(f"  leading group's page {REVIEW_URL}/login?token={STAFF['secretary']}")
    print(f"  public notice        {REVIEW_URL}/notice/{COMMUNITY}/{demo.last}")
    print(f"  all demo tokens      {tokens}")
    demo_ranking.run(demo, COMMUNITY)
    demo_exchange.run(COMMUNITY, token, demo.last)  # the Love Supermarket (deploy/demo_exchange.py)


if __name__ == "__main__":
    main()
