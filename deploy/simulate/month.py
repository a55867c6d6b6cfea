"""What the county lives through in the simulator: a roster per community, a month of intake through
every channel, the recorders' verification, the leading groups' certification, the Love Supermarket.

Everything goes through the services' public HTTP APIs with the roles the domain names (a recorder
enters oral, app, WeChat and QQ items; the site credential the official account's and the
enterprises' work reports; a supervisor the deductions; another recorder verifies; the secretary
and a leading-group member sign; clerks redeem at several counters). Idempotency keys are fixed per
run, so a retried request never doubles anything.
"""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from deploy.simulate.client import Client
from services.exchange.domain.member_code import member_code
from shared.auth import Principal, Role, issue_token
from shared.sites import Site

CHANNELS = ("app", "wechat", "qq", "official_account", "oral")
# A person's category, cycling (organisations are the first two subjects of each community).
CYCLE = ("resident", "party_member", "employed", "resident", "volunteer", "resident", "employed", "building_head",
         "resident", "party_member", "community_cadre", "resident", "property_staff", "employed", "resident",
         "volunteer", "resident", "employed", "resident", "party_member")
# Individual declarations: (rule, quantity for subject n) — rules open to every category, well under their caps.
INDIVIDUAL = (("VOLUNTEER_HOURS", lambda n: n % 12 + 1), ("HELP_MOVE", lambda n: n % 3 + 1),
              ("COMMUNITY_MEETING", lambda n: n % 5 + 1), ("LAW_STUDY", lambda n: n % 5 + 1))
SHELF = (("rice", "大米（10斤）", "袋", 20), ("oil", "食用油（5升）", "桶", 15), ("soap", "洗衣粉", "袋", 5))


@dataclass(frozen=True)
class Plan:
    communities: int
    subjects: int  # county-wide
    activity_share: float  # of persons, each attending one activity of ``activity_size``
    activity_size: int
    report_lines: int  # lines per enterprise work report
    needs: int  # per community
    deduction_every: int  # one deduction per this many persons
    connections: int  # per site
    verify_concurrency: int  # per community
    counters: int  # per community
    redemptions: int  # per community


@dataclass
class Request:
    path: str
    body: dict[str, Any]
    key: str
    role: str  # whose token
    items: int  # points items it creates
    kind: str


@dataclass
class Community:
    site: Site
    url: str
    subjects: list[dict[str, Any]]
    requests: list[Request] = field(default_factory=list)
    needs: list[tuple[str, str]] = field(default_factory=list)  # (key, subject that does it)

    @property
    def id(self) -> str:
        return self.site.community_id

    @property
    def items(self) -> int:
        return sum(r.items for r in self.requests) + len(self.needs)


@dataclass
class Tally:
    """What the load saw: answers by status and error code, latencies of single declarations."""

    done: int = 0
    items: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    first: float = 0.0
    last: float = 0.0

    def record(self, status: int, answer: Any, started: float, items: int = 0, single: bool = False) -> None:
        now = time.monotonic()
        self.first = self.first or started
        self.last = now
        self.done += 1
        code = str(status) if status < 300 or not isinstance(answer, dict) else f"{status} {answer.get('error')}"
        self.statuses[code] += 1
        if status < 300:
            self.items += items
            if single:
                self.latencies.append(now - started)


def last_month(tz: str) -> tuple[str, dt.date, int]:
    """The month simulated: the county's last month (it can be certified today). (YYYY-MM, first day, days)."""
    today = dt.datetime.now(ZoneInfo(tz)).date()
    end = today.replace(day=1) - dt.timedelta(days=1)
    return end.strftime("%Y-%m"), end.replace(day=1), calendar.monthrange(end.year, end.month)[1]


class Tokens:
    """One signed token per (role, community), made once (HMAC per request is the services' cost, not ours)."""

    def __init__(self) -> None:
        self._made: dict[tuple[str, str], str] = {}

    def __call__(self, role: str, community: str) -> str:
        key = (role, community)
        if key not in self._made:
            subs = {"recorder": "rec", "reviewer": "chk", "supervisor": "sup", "site": "site", "secretary": "sec",
                    "leading_group": "lg", "clerk": "clerk", "county_admin": "county-admin"}
            real = {"reviewer": Role.recorder}.get(role, Role(role))
            sub = subs[role] if role == "county_admin" else f"{subs[role]}-{community}"
            self._made[key] = issue_token(Principal(sub=sub, role=real, community=community, name=sub), days=7)
        return self._made[key]


def plan_month(plan: Plan, sites: list[Site], urls: dict[str, str], run: str, tz: str) -> list[Community]:
    month, first, days = last_month(tz)
    registered = dt.date(first.year - 1, 12, 1).isoformat()  # ranked for the whole year
    per = plan.subjects // plan.communities
    out = []
    for site in sites:
        c = site.community_id
        subjects: list[dict[str, Any]] = [
            {"subject_id": f"{c}-o1", "kind": "organisation", "name": "党支部", "categories": ["party_organization"],
             "registered_on": registered},
            {"subject_id": f"{c}-o2", "kind": "organisation", "name": "妇联工作站", "categories": ["mass_organization"],
             "registered_on": registered}]
        subjects += [{"subject_id": f"{c}-p{n:05d}", "kind": "person", "name": f"居民{n:05d}",
                      "categories": [CYCLE[n % len(CYCLE)]], "gender": ("female", "male")[n % 2],
                      "registered_on": registered} for n in range(per - 2)]
        community = Community(site, urls[site.name], subjects)
        community.requests = list(_interleave(_month_requests(plan, c, subjects, run, first, days)))
        community.needs = [(f"{run}-{c}-need-{k}", subjects[2 + (k * 97) % (per - 2)]["subject_id"])
                           for k in range(plan.needs)]
        out.append(community)
    del month
    return out


def _month_requests(plan: Plan, c: str, subjects: list[dict[str, Any]], run: str, first: dt.date,
                    days: int) -> list[list[Request]]:
    persons = [s for s in subjects if s["kind"] == "person"]

    def day(n: int) -> str:
        return (first + dt.timedelta(days=n % days)).isoformat()

    single = []
    for n, s in enumerate(persons):
        rule, quantity = INDIVIDUAL[n % len(INDIVIDUAL)]
        channel = CHANNELS[n % len(CHANNELS)]
        single.append(Request("/declarations", {
            "community_id": c, "subject_id": s["subject_id"], "rule_code": rule, "quantity": quantity(n),
            "occurred_on": day(n), "channel": channel, "description": f"{channel} 申报"},
            f"{run}-{c}-d-{n}", "site" if channel == "official_account" else "recorder", 1, "declaration"))
    attending = persons[:int(len(persons) * plan.activity_share)]
    activities = [Request("/activities", {
        "community_id": c, "title": f"义务劳动第 {k + 1} 场", "rule_code": "VOLUNTARY_LABOUR", "quantity": 1,
        "occurred_on": day(k * 7), "subject_ids": [s["subject_id"] for s in group]},
        f"{run}-{c}-a-{k}", "recorder", len(group), "activity")
        for k, group in enumerate(_chunks(attending, plan.activity_size))]
    employed = [s for s in persons if s["categories"] == ["employed"]]
    reports = [Request("/work-reports", {
        "community_id": c, "enterprise": f"产业园第 {k % 28 + 1} 家企业", "rule_code": "PARK_WORK",
        "occurred_on": day(days - 1), "lines": [{"subject_id": s["subject_id"], "quantity": 10 + i % 20}
                                                for i, s in enumerate(group)]},
        f"{run}-{c}-w-{k}", "site", len(group), "work_report")
        for k, group in enumerate(_chunks(employed, plan.report_lines))]
    deductions = [Request("/deductions", {
        "community_id": c, "subject_id": s["subject_id"], "rule_code": "LITTERING", "quantity": 1,
        "occurred_on": day(n), "reason": "楼道堆放杂物，劝导后仍未清理", "evidence": ["photo:sim-litter.jpg"]},
        f"{run}-{c}-x-{n}", "supervisor", 1, "deduction")
        for n, s in enumerate(persons[::plan.deduction_every])]
    return [single, activities, reports, deductions]


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    return (items[i:i + size] for i in range(0, len(items), size))


def _interleave(groups: list[list[Request]]) -> Iterable[Request]:
    """Every kind spread evenly over the month's load (not all activities at the end)."""
    total = sum(len(g) for g in groups)
    keyed = [((i + 0.5) / len(g), r) for g in groups for i, r in enumerate(g)]
    del total
    return (r for _, r in sorted(keyed, key=lambda x: x[0]))


# ---- driving the services ------------------------------------------------------------------


async def in_parallel(n: int, jobs: Iterable[Callable[[], Awaitable[None]]]) -> None:
    """Run ``jobs`` with at most ``n`` at a time."""
    queue = list(jobs)
    queue.reverse()

    async def worker() -> None:
        while queue:
            await queue.pop()()

    await asyncio.gather(*(worker() for _ in range(max(1, n))))


async def post_ok(client: Client, path: str, body: Any, key: str, token: str, retry_on: tuple[str, ...] = (),
                  patience_s: float = 300) -> Any:
    """POST until 2xx (retrying the ``retry_on`` refusals, e.g. a projection not yet caught up); RuntimeError else."""
    deadline = time.monotonic() + patience_s
    while True:
        status, answer = await client.post(path, body, key, token)
        if status < 300:
            return answer
        error = answer.get("error") if isinstance(answer, dict) else None
        if error not in retry_on or time.monotonic() > deadline:
            raise RuntimeError(f"{path} refused ({status}): {answer}")
        await asyncio.sleep(0.5)


async def register(community: Community, client: Client, tokens: Tokens, run: str, tally: Tally) -> None:
    admin = tokens("county_admin", "*")
    await post_ok(client, "/communities", {"community_id": community.id, "name": f"模拟安置社区 {community.id}"},
                  f"{run}-{community.id}-community", admin)
    for k, batch in enumerate(_chunks(community.subjects, 1000)):
        started = time.monotonic()
        await post_ok(client, "/subjects", {"community_id": community.id, "subjects": batch},
                      f"{run}-{community.id}-subjects-{k}", admin)
        tally.record(201, None, started, len(batch))


async def intake(community: Community, client: Client, tokens: Tokens, connections: int, tally: Tally) -> None:
    """The month's requests at one site, ``connections`` at a time; the needs board alongside."""

    async def one(r: Request) -> None:
        started = time.monotonic()
        status, answer = await client.post(r.path, r.body, r.key, tokens(r.role, community.id))
        tally.record(status, answer, started, r.items, single=r.kind == "declaration")

    async def needs() -> None:
        recorder = tokens("recorder", community.id)
        _, first, days = last_month("Asia/Shanghai")
        for key, doer in community.needs:
            started = time.monotonic()
            need = await post_ok(client, "/needs", {"community_id": community.id, "title": "帮新搬迁群众搬家具",
                                                    "rule_code": "HELP_MOVE", "quantity": 1}, key, recorder)
            await post_ok(client, f"/needs/{need['need_id']}/take", {"subject_id": doer}, f"{key}-take", recorder)
            await post_ok(client, f"/needs/{need['need_id']}/complete",
                          {"occurred_on": (first + dt.timedelta(days=days - 2)).isoformat(),
                           "evidence": ["photo:sim-move.jpg"]}, f"{key}-done", recorder)
            tally.record(201, None, started, 1)

    await asyncio.gather(in_parallel(connections, [partial(one, r) for r in community.requests]), needs())


async def stock_the_shelves(community: Community, client: Client, tokens: Tokens, run: str) -> None:
    clerk = tokens("clerk", community.id)
    today = dt.date.today().isoformat()
    for item, name, unit, price in SHELF:
        item_id, key = f"{community.id}-{item}", f"{run}-{community.id}-{item}"
        await post_ok(client, "/catalogue/items", {"item_id": item_id, "community_id": community.id, "name": name,
                                                   "unit": unit, "price": price}, key, clerk)
        await post_ok(client, "/donations", {"item_id": item_id, "donor": "赫章县爱心企业联合会", "quantity": 100_000,
                                             "received_on": today}, f"{key}-gift", clerk)


async def verify_items(community: Community, client: Client, tokens: Tokens, month: str, run: str,
                       concurrency: int, tally: Tally) -> Counter[str]:
    """A recorder (not the one who entered them) decides every item: most verified, a few returned or
    rejected. Returns the decisions made."""
    reviewer = tokens("reviewer", community.id)
    decided: Counter[str] = Counter()
    while True:
        status, answer = await client.get("/items", reviewer, community_id=community.id, month=month,
                                          status="submitted", limit=5000)
        waiting = answer["items"] if status == 200 else []
        if not waiting:
            return decided

        async def decide(item: dict[str, Any]) -> None:
            n = sum(item["item_id"].encode())
            decision, note = (("returned", "请补充佐证材料") if n % 97 == 0 else ("rejected", "与事实不符")
                              if n % 211 == 0 else ("verified", "材料齐全"))
            started = time.monotonic()
            answer = await post_ok(client, f"/items/{item['item_id']}/verification", {"decision": decision,
                                   "note": note}, f"{run}-check-{item['item_id']}", reviewer,
                                   retry_on=("concurrent_update",))
            decided[decision] += 1
            tally.record(201, answer, started, 1)

        await in_parallel(concurrency, [partial(decide, i) for i in waiting])


async def certify(community: Community, client: Client, tokens: Tokens, month: str, run: str, verified: int,
                  patience_s: float = 900) -> float:
    """The secretary and a leading-group member sign the month's list of ``verified`` items (once the
    review board shows them all); returns when the month was certified."""
    secretary = tokens("secretary", community.id)
    deadline = time.monotonic() + patience_s
    while True:
        status, answer = await client.get(f"/certifications/{community.id}/{month}", secretary)
        ready = status == 200 and answer.get("waiting") == 0 and answer.get("count") == verified
        if not ready:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{community.id} {month}: the list to sign is not ready: {answer}")
            await asyncio.sleep(0.5)
            continue
        digest = answer["digest"]
        for role in ("secretary", "leading_group"):
            key = f"{run}-{community.id}-sign-{role}-{digest[:16]}"
            status, signed = await client.post("/certifications", {"community_id": community.id, "month": month,
                                                                   "digest": digest}, key, tokens(role, community.id))
            if status >= 300:
                break
        if status < 300 and signed.get("certified"):
            return time.monotonic()
        if not (isinstance(signed, dict) and signed.get("error") == "digest_changed") or time.monotonic() > deadline:
            raise RuntimeError(f"{community.id} {month}: not certified ({status}): {signed}")


async def redeem(community: Community, client: Client, tokens: Tokens, counters: int, redemptions: int, run: str,
                 tally: Tally) -> None:
    """Clerks at ``counters`` counters of the community's supermarket, each serving members in turn."""
    clerk = tokens("clerk", community.id)
    persons = [s["subject_id"] for s in community.subjects if s["kind"] == "person"]

    async def one(k: int) -> None:
        subject = persons[(k * 7919) % len(persons)]
        item, _, _, _ = SHELF[k % len(SHELF)]
        started = time.monotonic()
        status, answer = await client.post("/redemptions", {
            "member_code": member_code(subject), "counter": f"counter-{k % counters + 1}",
            "lines": [{"item_id": f"{community.id}-{item}", "quantity": 1}]}, f"{run}-{community.id}-redeem-{k}", clerk)
        tally.record(status, answer, started, 1 if status < 300 else 0)

    await in_parallel(counters, [partial(one, k) for k in range(redemptions)])
