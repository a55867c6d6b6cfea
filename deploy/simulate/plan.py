"""What the county lives through, decided before anything runs: its communities, their rosters and a
month of requests through every channel. Pure: the month and the run id are passed in, so a plan can be
looked at (and tested) without a stack.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.sites import Site

CHANNELS = ("app", "wechat", "qq", "official_account", "oral")  # every earning channel of a declaration
# A person's category, cycling (organisations are the first two subjects of each community).
CYCLE = ("resident", "party_member", "employed", "resident", "volunteer", "resident", "employed", "building_head",
         "resident", "party_member", "community_cadre", "resident", "property_staff", "employed", "resident",
         "volunteer", "resident", "employed", "resident", "party_member")
# Individual declarations: (rule, quantity for person n): rules open to every category, well under their caps.
INDIVIDUAL = (("VOLUNTEER_HOURS", lambda n: n % 12 + 1), ("HELP_MOVE", lambda n: n % 3 + 1),
              ("COMMUNITY_MEETING", lambda n: n % 5 + 1), ("LAW_STUDY", lambda n: n % 5 + 1))
SHELF = (("rice", "大米（1斤）", "袋", 6), ("oil", "食用油（1升）", "桶", 5), ("soap", "洗衣粉", "袋", 2))


@dataclass(frozen=True)
class Plan:
    communities: int = 20
    subjects: int = 200_000  # county-wide, shared evenly
    activity_share: float = 0.5  # of persons, each attending one activity of ``activity_size``
    activity_size: int = 50
    report_lines: int = 200  # lines per enterprise work report
    needs: int = 5  # needs-board tasks per community
    deduction_every: int = 200  # one deduction per this many persons
    # requests in flight per site: residents on four channels and the clerks at once. A site commits what is
    # queued together (group commit), so this is also how much one transaction carries: the full county ran
    # 435 items/s end to end with 4 and 1,276/s with 24 (docs/sites.md)
    connections: int = 24
    verify_concurrency: int = 1  # pages at once per community: a community's pages queue on its page lock
    counters: int = 3  # supermarket counters per community
    redemptions: int = 100  # per community


SMALL = {"communities": 3, "subjects": 600, "redemptions": 20, "needs": 2, "report_lines": 40}  # a smoke run


@dataclass(frozen=True)
class Month:
    """The month simulated: the county's last (it can be certified today)."""

    name: str  # YYYY-MM
    first: dt.date
    days: int

    @classmethod
    def before(cls, today: dt.date) -> Month:
        end = today.replace(day=1) - dt.timedelta(days=1)
        return cls(end.strftime("%Y-%m"), end.replace(day=1), calendar.monthrange(end.year, end.month)[1])

    def day(self, n: int) -> str:
        return (self.first + dt.timedelta(days=n % self.days)).isoformat()


@dataclass(frozen=True)
class Request:
    path: str
    body: dict[str, Any]
    key: str  # idempotency key, fixed per run: a retried request never doubles anything
    role: str  # whose token
    items: int  # points items it creates
    kind: str


@dataclass
class Community:
    site: Site
    subjects: list[dict[str, Any]]
    requests: list[Request] = field(default_factory=list)
    needs: list[tuple[str, str]] = field(default_factory=list)  # (idempotency key, the subject who does it)

    @property
    def id(self) -> str:
        return self.site.community_id

    @property
    def persons(self) -> list[str]:
        return [s["subject_id"] for s in self.subjects if s["kind"] == "person"]

    @property
    def attendees(self) -> list[str]:
        return [who for r in self.requests if r.kind == "activity" for who in r.body["subject_ids"]]

    @property
    def items(self) -> int:
        return sum(r.items for r in self.requests) + len(self.needs)


def sites(communities: int) -> list[Site]:
    return [Site(f"s{i:02d}", f"c-sim{i:02d}") for i in range(1, communities + 1)]


def county(plan: Plan, month: Month, run: str) -> list[Community]:
    """Every community of the county with its roster (registered a year before: ranked for the whole
    year) and its month of requests, every kind spread over the month."""
    registered = dt.date(month.first.year - 1, month.first.month, 1).isoformat()
    per = plan.subjects // plan.communities
    out = []
    for site in sites(plan.communities):
        c = site.community_id
        subjects: list[dict[str, Any]] = [
            {"subject_id": f"{c}-o1", "kind": "organisation", "name": "党支部", "categories": ["party_organization"],
             "registered_on": registered},
            {"subject_id": f"{c}-o2", "kind": "organisation", "name": "妇联工作站", "categories": ["mass_organization"],
             "registered_on": registered}]
        subjects += [{"subject_id": f"{c}-p{n:05d}", "kind": "person", "name": f"居民{n:05d}",
                      "categories": [CYCLE[n % len(CYCLE)]], "gender": ("female", "male")[n % 2],
                      "registered_on": registered} for n in range(per - 2)]
        community = Community(site, subjects)
        community.requests = list(interleave(month_requests(plan, community, month, run)))
        persons = community.persons
        community.needs = [(f"{run}-{c}-need-{k}", persons[(k * 97) % len(persons)]) for k in range(plan.needs)]
        out.append(community)
    return out


def month_requests(plan: Plan, community: Community, month: Month, run: str) -> list[list[Request]]:
    """Declarations (one per person, channels in turn), activities, enterprises' work reports, deductions."""
    c = community.id
    persons = [s for s in community.subjects if s["kind"] == "person"]
    single = []
    for n, s in enumerate(persons):
        rule, quantity = INDIVIDUAL[n % len(INDIVIDUAL)]
        channel = CHANNELS[n % len(CHANNELS)]
        single.append(Request("/declarations", {
            "community_id": c, "subject_id": s["subject_id"], "rule_code": rule, "quantity": quantity(n),
            "occurred_on": month.day(n), "channel": channel, "description": f"{channel} 申报"},
            f"{run}-{c}-d-{n}", "site" if channel == "official_account" else "recorder", 1, "declaration"))
    attending = persons[:int(len(persons) * plan.activity_share)]
    activities = [Request("/activities", {
        "community_id": c, "title": f"义务劳动第 {k + 1} 场", "rule_code": "VOLUNTARY_LABOUR", "quantity": 1,
        "occurred_on": month.day(k * 7), "subject_ids": [s["subject_id"] for s in group]},
        f"{run}-{c}-a-{k}", "recorder", len(group), "activity")
        for k, group in enumerate(chunks(attending, plan.activity_size))]
    employed = [s for s in persons if s["categories"] == ["employed"]]
    reports = [Request("/work-reports", {
        "community_id": c, "enterprise": f"产业园第 {k % 28 + 1} 家企业", "rule_code": "PARK_WORK",
        "occurred_on": month.day(month.days - 1),
        "lines": [{"subject_id": s["subject_id"], "quantity": 10 + i % 20} for i, s in enumerate(group)]},
        f"{run}-{c}-w-{k}", "site", len(group), "work_report")
        for k, group in enumerate(chunks(employed, plan.report_lines))]
    deductions = [Request("/deductions", {
        "community_id": c, "subject_id": s["subject_id"], "rule_code": "LITTERING", "quantity": 1,
        "occurred_on": month.day(n), "reason": "楼道堆放杂物，劝导后仍未清理", "evidence": ["photo:sim-litter.jpg"]},
        f"{run}-{c}-x-{n}", "supervisor", 1, "deduction")
        for n, s in enumerate(persons[::plan.deduction_every])]
    return [single, activities, reports, deductions]


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    return (items[i:i + size] for i in range(0, len(items), size))


def interleave(groups: list[list[Request]]) -> Iterable[Request]:
    """Every kind spread evenly over the month's load (not all activities at the end)."""
    keyed = [((i + 0.5) / len(g), k, i) for k, g in enumerate(groups) for i in range(len(g))]
    return (groups[k][i] for _, k, i in sorted(keyed))
