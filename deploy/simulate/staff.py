"""The county's people at work, through the services' public HTTP APIs and with the roles the domain
names: the county admin registers each community at its site; recorders enter oral, app, WeChat and QQ
items, the site credential the official account's and the enterprises' work reports, a supervisor the
deductions; a second recorder verifies, a page at a time; the secretary and a leading-group member each
sign the month with their own token; clerks redeem at several counters of each Love Supermarket.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
from collections import Counter
from functools import partial
from typing import Any

from deploy.simulate.client import Client
from deploy.simulate.load import Tally, Tokens, in_parallel, post_ok
from deploy.simulate.plan import SHELF, Community, Month, Request, chunks
from services.exchange.domain.member_code import member_code

PAGE = 500  # looks per request: review's limit, one page of the office's list
SIGNERS = ("secretary", "leading_group")  # the quorum (review's default): the secretary and one other member


async def register(community: Community, site: Client, tokens: Tokens, run: str, tally: Tally) -> None:
    admin = tokens("county_admin", "*")
    await post_ok(site, "/communities", {"community_id": community.id, "name": f"模拟安置社区 {community.id}"},
                  f"{run}-{community.id}-community", admin)
    for k, batch in enumerate(chunks(community.subjects, 1000)):
        started = time.monotonic()
        await post_ok(site, "/subjects", {"community_id": community.id, "subjects": batch},
                      f"{run}-{community.id}-subjects-{k}", admin)
        tally.record(201, None, started, len(batch))


async def stock_the_shelves(community: Community, exchange: Client, tokens: Tokens, run: str,
                            received_on: dt.date) -> None:
    clerk = tokens("clerk", community.id)
    for item, name, unit, price in SHELF:
        item_id, key = f"{community.id}-{item}", f"{run}-{community.id}-{item}"
        await post_ok(exchange, "/catalogue/items", {"item_id": item_id, "community_id": community.id, "name": name,
                                                     "unit": unit, "price": price}, key, clerk)
        await post_ok(exchange, "/donations", {"item_id": item_id, "donor": "赫章县爱心企业联合会",
                                               "quantity": 100_000, "received_on": received_on.isoformat()},
                      f"{key}-gift", clerk)


async def intake(community: Community, site: Client, tokens: Tokens, month: Month, connections: int,
                 tally: Tally) -> None:
    """The month's requests at one site, ``connections`` at a time; the needs board alongside."""

    async def one(r: Request) -> None:
        started = time.monotonic()
        status, answer = await site.post(r.path, r.body, r.key, tokens(r.role, community.id))
        tally.record(status, answer, started, r.items, single=r.kind == "declaration")

    async def needs() -> None:
        recorder = tokens("recorder", community.id)
        for key, doer in community.needs:
            started = time.monotonic()
            need = await post_ok(site, "/needs", {"community_id": community.id, "title": "帮新搬迁群众搬家具",
                                                  "rule_code": "HELP_MOVE", "quantity": 1}, key, recorder)
            await post_ok(site, f"/needs/{need['need_id']}/take", {"subject_id": doer}, f"{key}-take", recorder)
            await post_ok(site, f"/needs/{need['need_id']}/complete", {
                "occurred_on": month.day(month.days - 2), "evidence": ["photo:sim-move.jpg"]}, f"{key}-done", recorder)
            tally.record(201, None, started, 1)

    await asyncio.gather(in_parallel(connections, [partial(one, r) for r in community.requests]), needs())


def decision(item_id: str) -> tuple[str, str]:
    """Most items verified, a few sent back or rejected (fixed per item, so a rerun decides the same)."""
    n = sum(item_id.encode())
    if n % 97 == 0:
        return "returned", "请补充佐证材料"
    if n % 211 == 0:
        return "rejected", "与事实不符"
    return "verified", "材料齐全"


async def verify_items(community: Community, review: Client, tokens: Tokens, month: Month, run: str,
                       concurrency: int, tally: Tally, page_size: int = PAGE) -> Counter[str]:
    """A second recorder decides every submitted item of the month, a page at a time (``POST
    /items/verifications``, as the office does); returns the decisions made. The list comes from review's
    board, a projection: an item just decided may still show as submitted for a moment, so each item is
    decided once and the list read again until it is empty."""
    reviewer = tokens("reviewer", community.id)
    decided: Counter[str] = Counter()
    done: set[str] = set()

    async def decide(page: list[dict[str, Any]]) -> None:
        looks = [{"item_id": i["item_id"], "decision": d, "note": note}
                 for i in page for d, note in [decision(i["item_id"])]]
        ids = "\n".join(look["item_id"] for look in looks)
        key = f"{run}-{community.id}-page-{hashlib.sha256(ids.encode()).hexdigest()[:24]}"  # a rerun: the first answer
        started = time.monotonic()
        answer = await post_ok(review, "/items/verifications", {"decisions": looks}, key, reviewer,
                               retry_on=("concurrent_update",))
        wrong = [o for o in answer["outcomes"] if o["outcome"] == "refused" and o["error"] != "already_decided"]
        if wrong:  # the reviewer entered none of these items: any other refusal is the simulator's mistake
            raise RuntimeError(f"{community.id}: {len(wrong)} looks refused, e.g. {wrong[0]}")
        decided.update(o["decision"] for o in answer["outcomes"] if o["outcome"] == "accepted")
        tally.record(200, answer, started, answer["accepted"])

    while True:
        status, answer = await review.get("/items", reviewer, community_id=community.id, month=month.name,
                                          status="submitted", limit=5000)
        if status != 200:
            raise RuntimeError(f"GET /items refused ({status}): {answer}")
        if not answer["items"]:
            return decided
        waiting = [i for i in answer["items"] if i["item_id"] not in done]
        done.update(i["item_id"] for i in waiting)
        if not waiting:
            await asyncio.sleep(0.2)  # the board has not caught up with the last decisions yet
        await in_parallel(concurrency, [partial(decide, page) for page in chunks(waiting, page_size)])


async def certify(community: Community, review: Client, tokens: Tokens, month: Month, run: str, verified: int,
                  patience_s: float = 900) -> float:
    """Once review's list to sign holds the ``verified`` items, each signer signs its digest with their own
    token; returns when the month was certified (monotonic clock)."""
    deadline = time.monotonic() + patience_s
    while True:
        status, answer = await review.get(f"/certifications/{community.id}/{month.name}",
                                          tokens("secretary", community.id))
        if not (status == 200 and answer.get("waiting") == 0 and answer.get("count") == verified):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{community.id} {month.name}: the list to sign is not ready: {answer}")
            await asyncio.sleep(0.5)
            continue
        digest = answer["digest"]
        for role in SIGNERS:
            status, signed = await review.post("/certifications", {
                "community_id": community.id, "month": month.name, "digest": digest},
                f"{run}-{community.id}-sign-{role}-{digest[:16]}", tokens(role, community.id))
            if status >= 300:
                break
        if status < 300 and signed.get("certified"):
            return time.monotonic()
        if not (isinstance(signed, dict) and signed.get("error") == "digest_changed") or time.monotonic() > deadline:
            raise RuntimeError(f"{community.id} {month.name}: not certified ({status}): {signed}")


async def redeem(community: Community, exchange: Client, tokens: Tokens, counters: int, redemptions: int, run: str,
                 tally: Tally) -> None:
    """Clerks at ``counters`` counters of the community's supermarket, each serving members in turn: members
    who went to an activity as well as declaring (enough certified points for one item, mostly)."""
    clerk = tokens("clerk", community.id)
    persons = community.attendees or community.persons

    async def one(k: int) -> None:
        subject = persons[(k * 7919) % len(persons)]
        item = SHELF[k % len(SHELF)][0]
        started = time.monotonic()
        status, answer = await exchange.post("/redemptions", {
            "member_code": member_code(subject), "counter": f"counter-{k % counters + 1}",
            "lines": [{"item_id": f"{community.id}-{item}", "quantity": 1}]}, f"{run}-{community.id}-redeem-{k}",
            clerk)
        tally.record(status, answer, started, 1 if status < 300 else 0)

    await in_parallel(counters, [partial(one, k) for k in range(redemptions)])
