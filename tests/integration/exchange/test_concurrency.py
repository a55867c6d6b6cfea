"""Acceptance: many counters at once never overdraw a balance, never sell stock that is not there,
never redeem twice; 1,639 residents give the seed's statistics; a rebuild from offset 0 into a
scratch schema gives every balance and every stock back."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from typing import Any

import asyncpg
import httpx
import pytest

from services.exchange.projection import ExchangeProjection
from shared import replay
from shared.auth import Role
from tests.integration.exchange.support import COMMUNITY, code, list_item, subject, supermarket
from tests.support.services import running_service, token

pytestmark = pytest.mark.integration
COUNTERS = 4


async def at_counters(urls: str | list[str], requests: list[tuple[str, dict[str, Any]]]
                      ) -> list[tuple[str, int, dict[str, Any]]]:
    """Send (key, body) requests from ``COUNTERS`` clients at once: counter n takes every n-th request and
    talks to service process ``n % len(urls)``."""
    urls = [urls] if isinstance(urls, str) else urls

    async def counter(n: int) -> list[tuple[str, int, dict[str, Any]]]:
        headers = {"authorization": f"Bearer {token(f'clerk-{n}', Role.clerk, COMMUNITY)}"}
        async with httpx.AsyncClient(base_url=urls[n % len(urls)], headers=headers, timeout=60) as client:
            async def one(key: str, body: dict[str, Any]) -> tuple[str, int, dict[str, Any]]:
                r = await client.post("/redemptions", headers={"idempotency-key": key}, json=body)
                return key, r.status_code, r.json()
            return list(await asyncio.gather(*(one(k, b) for k, b in requests[n::COUNTERS])))
    results = await asyncio.gather(*(counter(n) for n in range(COUNTERS)))
    return [r for rs in results for r in rs]


async def fetch(dsn: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)  # type: ignore[no-any-return]
    finally:
        await conn.close()


async def test_given_stock_50_when_200_requests_race_at_4_counters_then_exactly_the_right_ones_succeed(
        stack: tuple[str, str]) -> None:
    async with supermarket(stack) as market:
        # given 150 residents with 0, 5, 10 or 15 points, and an item at 10 points with 50 in stock
        residents = [subject(n) for n in range(150)]
        balance = {s.subject_id: (n % 4) * 5 for n, s in enumerate(residents)}
        await market.roster(residents)
        await market.certify(COMMUNITY, "2026-11", {sid: p for sid, p in balance.items() if p})
        await market.wait_for_balance(residents[-1].subject_id, balance[residents[-1].subject_id])
        list_item(market.clerk(), "rice", price=10, stock=50)
        # when the first 50 ask twice and the others once (200 requests), 40 of them sent twice with the same key,
        # from 4 counters served by two service processes on the same database
        requests = [(f"k-{s.subject_id}-{t}", {"member_code": code(s.subject_id), "lines": [{"item_id": "rice",
                                                                                           "quantity": 1}]})
                    for n, s in enumerate(residents) for t in range(2 if n < 50 else 1)]
        random.Random(12).shuffle(requests)
        sent = requests + random.Random(13).sample(requests, 40)
        with running_service("exchange", market.settings) as second:
            started = time.monotonic()
            results = await at_counters([market.service.url, second.url], sent)
            elapsed = time.monotonic() - started
        # then every repeat got the first answer, and exactly the feasible requests succeeded, up to the stock
        by_key: dict[str, set[str]] = {}
        for key, status, body in results:
            by_key.setdefault(key, set()).add(json.dumps([status, body], sort_keys=True))
        assert all(len(answers) == 1 for answers in by_key.values()), [a for a in by_key.values() if len(a) > 1][:2]
        answers = {key: (status, body) for key, status, body in results}
        won = [key for key, (status, _) in answers.items() if status == 201]
        sid_of = {key: key[2:-2] for key in answers}
        assert len(won) == 50, Counter(body.get("error") for _, body in answers.values())
        assert len({sid_of[k] for k in won}) == 50 and all(balance[sid_of[k]] >= 10 for k in won)
        for key, (status, body) in answers.items():
            if status != 201:
                expected = "balance_insufficient" if balance[sid_of[key]] < 10 or sid_of[key] in {
                    sid_of[k] for k in won} else "out_of_stock"
                assert body["error"] in (expected, "out_of_stock"), (key, body)
                if balance[sid_of[key]] < 10:
                    assert body["error"] == "balance_insufficient"
        db = market.settings.database_url
        [stock] = await fetch(db, "select received - redeemed + returned as s from stock where item_id = 'rice'")
        assert stock["s"] == 0
        rows = await fetch(db, "select subject_id, awarded + corrected - redeemed + returned as s from balances")
        assert min(r["s"] for r in rows) >= 0
        assert {r["subject_id"]: r["s"] for r in rows} == {
            sid: p - 10 * sum(1 for k in won if sid_of[k] == sid) for sid, p in balance.items()}
        [events] = await fetch(db, "select count(*) as n from events where type like '%.Redeemed.v1'")
        assert events["n"] == 50
        print(f"\n240 requests (200 distinct) from {COUNTERS} counters, 2 processes, in {elapsed:.2f}s: 50 redeemed, "
              f"{Counter(body.get('error') for s, body in answers.values() if s != 201)}")


async def test_given_1639_residents_when_each_redeems_one_item_then_statistics_and_a_rebuild_agree(
        stack: tuple[str, str]) -> None:
    async with supermarket(stack) as market:
        # given 1,639 residents with certified points and two items donated
        residents = [subject(n) for n in range(1639)]
        await market.roster(residents)
        await market.certify(COMMUNITY, "2026-11", {s.subject_id: 20 + n % 7 for n, s in enumerate(residents)})
        await market.wait_for_balance(residents[-1].subject_id, 20 + 1638 % 7, within=120)
        clerk = market.clerk()
        list_item(clerk, "rice", price=10, stock=1200)
        list_item(clerk, "oil", price=15, stock=1200, name="食用油")
        # when each redeems one item across 4 counters
        requests = [(f"k-{s.subject_id}", {"member_code": code(s.subject_id),
                                           "lines": [{"item_id": "rice" if n % 3 else "oil", "quantity": 1}]})
                    for n, s in enumerate(residents)]
        started = time.monotonic()
        results = await at_counters(market.service.url, requests)
        elapsed = time.monotonic() - started
        assert all(status == 201 for _, status, _ in results), [b for _, s, b in results if s != 201][:3]
        month = results[0][2]["lines"][0]["period_key"]
        # then the statistics say 1,639 items by 1,639 residents
        stats = clerk.get(f"/statistics/{COMMUNITY}/{month}").json()
        assert (stats["items_exchanged"], stats["residents"]) == (1639, 1639), stats
        assert [t["item_id"] for t in stats["top_items"]] == ["rice", "oil"]
        # and after a few returns, a rebuild from offset 0 into a scratch schema gives every balance and stock back
        for _, _, body in results[:25]:
            rid = body["redemption_id"]
            r = clerk.post(f"/redemptions/{rid}/return", headers={"idempotency-key": f"ret-{rid}"},
                           json={"reason": "不需要了"})
            assert r.status_code == 201, r.text
        db = market.settings.database_url
        pool = await asyncpg.create_pool(db, min_size=1, max_size=2)
        try:
            for _ in range(200):  # the projection has read the exchange topic to its end
                [left] = await fetch(db, "select count(*) as n from events where published_at is null")
                if left["n"] == 0:
                    break
                await asyncio.sleep(0.1)
            built = await replay.rebuild(pool, ExchangeProjection(), market.settings)
        finally:
            await pool.close()
        live_b = await fetch(db, "select subject_id, awarded, corrected, redeemed, returned from balances order by 1")
        scratch_b = await fetch(db, "select subject_id, awarded, corrected, redeemed, returned "
                                    f"from {built.schema}.balances order by 1")
        assert [tuple(r) for r in live_b] == [tuple(r) for r in scratch_b]
        certified = {s.subject_id: 20 + n % 7 for n, s in enumerate(residents)}
        spent = Counter[str]()
        for _, _, body in results:
            spent[body["lines"][0]["item_id"] and body["member_code"]] += body["total_points"]
        returned = {body["member_code"]: body["total_points"] for _, _, body in results[:25]}
        codes = {code(sid): sid for sid in certified}
        expected = {sid: certified[sid] - spent[c] + returned.get(c, 0) for c, sid in codes.items()}
        rebuilt = {r["subject_id"]: r["awarded"] + r["corrected"] - r["redeemed"] + r["returned"] for r in scratch_b}
        assert rebuilt == expected
        stock = await fetch(db, f"select item_id, received, redeemed, returned from {built.schema}.stock order by 1")
        moved = Counter(body["lines"][0]["item_id"] for _, _, body in results)
        back = Counter(body["lines"][0]["item_id"] for _, _, body in results[:25])
        assert {r["item_id"]: (r["received"], r["received"] - r["redeemed"] + r["returned"]) for r in stock} == {
            item: (1200, 1200 - moved[item] + back[item]) for item in ("oil", "rice")}
        print(f"\n1,639 redemptions from {COUNTERS} counters in {elapsed:.2f}s ({1639 / elapsed:.0f}/s); "
              f"rebuild: {built.events:,} events into {built.schema}, rows {built.rows}")
