"""A month certified while a fault runs: last month of a community of its own at the county, declared
before the faults; during the chosen fault a second recorder verifies its items and the leading group
signs, with the simulator's staff (``deploy.simulate.staff``), so that the awards and the closing
``MonthCertified`` flow from review to ranking under that fault. The suite's checks then hold ranking's
read models (and every other) against a rebuild."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from dataclasses import dataclass
from functools import partial
from zoneinfo import ZoneInfo

from deploy.simulate import staff
from deploy.simulate.client import Client
from deploy.simulate.load import Tally, Tokens, in_parallel, post_ok
from deploy.simulate.plan import Community, Month
from shared.sites import Site

COMMUNITY = Site("county-certify", "c-certify")  # served by the county's own intake, not a site
RULE = "VOLUNTEER_HOURS"


@dataclass
class Certification:
    community: Community
    month: Month
    items: int
    run: str
    tokens: Tokens
    review_url: str


def community(month: Month, subjects: int) -> Community:
    registered = month.first.isoformat()  # on the roster for the whole month
    return Community(COMMUNITY, [{"subject_id": f"{COMMUNITY.community_id}-p{n:03d}", "kind": "person",
                                  "name": f"认定演练居民{n:03d}", "categories": ["volunteer"],
                                  "gender": ("female", "male")[n % 2], "registered_on": registered}
                                 for n in range(subjects)])


async def prepare(county_url: str, review_url: str, items: int = 20, timezone: str = "Asia/Shanghai",
                  patience_s: float = 300) -> Certification:
    """The community, its roster and ``items`` declarations in last month; returns once review lists them."""
    month = Month.before(dt.datetime.now(ZoneInfo(timezone)).date())
    cert = Certification(community(month, max(1, items // 4)), month, items, uuid.uuid4().hex[:8], Tokens(),
                         review_url)
    c, tokens = cert.community, cert.tokens
    county = Client(county_url)
    try:
        await staff.register(c, county, tokens, cert.run, Tally())
        persons = c.persons

        async def declare(k: int) -> None:
            await post_ok(county, "/declarations", {
                "community_id": c.id, "subject_id": persons[k % len(persons)], "rule_code": RULE, "quantity": 1,
                "occurred_on": month.day(k), "channel": "oral", "description": "志愿服务 1 小时", "evidence": []},
                f"{cert.run}-certify-{k}", tokens("recorder", c.id))
        await in_parallel(4, [partial(declare, k) for k in range(items)])
    finally:
        await county.close()
    await _until_listed(cert, patience_s)
    return cert


async def _until_listed(cert: Certification, patience_s: float) -> None:
    review = Client(cert.review_url)
    deadline = time.monotonic() + patience_s
    try:
        while True:
            status, answer = await review.get("/items", cert.tokens("reviewer", cert.community.id),
                                              community_id=cert.community.id, month=cert.month.name,
                                              status="submitted", limit=5000)
            if status == 200 and len(answer["items"]) == cert.items:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"review does not list the {cert.items} items to certify: {status} {answer}")
            await asyncio.sleep(0.5)
    finally:
        await review.close()


async def certify(cert: Certification) -> dict[str, object]:
    """Verify every item and sign the month; what was certified (the report's facts)."""
    review = Client(cert.review_url)
    try:
        decided = await staff.verify_items(cert.community, review, cert.tokens, cert.month, cert.run, 1, Tally())
        await staff.certify(cert.community, review, cert.tokens, cert.month, cert.run, decided["verified"])
    finally:
        await review.close()
    return {"certified": {"community": cert.community.id, "month": cert.month.name, "items": cert.items,
                          "awarded": decided["verified"]}}
