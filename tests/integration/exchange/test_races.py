"""A price change racing redemptions: nobody is charged a price the counter did not show."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from shared.auth import Role
from tests.integration.exchange.support import COMMUNITY, code, list_item, subject, supermarket
from tests.support.services import token

pytestmark = pytest.mark.integration


async def test_given_redemptions_at_the_shown_price_when_the_price_changes_meanwhile_then_none_pays_another_price(
        stack: tuple[str, str]) -> None:
    async with supermarket(stack) as market:
        # given 40 residents with points and rice at 10 points
        residents = [subject(n) for n in range(40)]
        await market.roster(residents)
        await market.certify(COMMUNITY, "2026-11", {s.subject_id: 100 for s in residents})
        await market.wait_for_balance(residents[-1].subject_id, 100)
        list_item(market.clerk(), "rice", price=10, stock=500)
        headers = {"authorization": f"Bearer {token('clerk-1', Role.clerk, COMMUNITY)}"}
        async with httpx.AsyncClient(base_url=market.service.url, headers=headers, timeout=60) as http:
            async def redeem(n: int, price: int) -> httpx.Response:
                return await http.post("/redemptions", headers={"idempotency-key": f"race-{n:03d}-{price}"}, json={
                    "member_code": code(residents[n].subject_id), "lines": [{"item_id": "rice", "quantity": 1,
                                                                             "price": price}]})

            async def change() -> httpx.Response:
                await asyncio.sleep(0.02)
                return await http.post("/catalogue/items/rice/price", json={"price": 12},
                                       headers={"idempotency-key": "race-price"})
            # when 40 redemptions at the shown price 10 race a price change to 12 (effective now)
            *answers, changed = await asyncio.gather(*(redeem(n, 10) for n in range(40)), change())
            assert changed.status_code == 201, changed.text
            # then each either paid 10 or was refused as "price changed" naming the new price; nothing else
            for r in answers:
                if r.status_code == 201:
                    assert r.json()["lines"][0]["unit_price"] == 10 and r.json()["total_points"] == 10
                else:
                    assert (r.status_code, r.json()["error"], r.json()["detail"]["price"]) == (409, "price_changed", 12)
            paid = {r.json()["member_code"] for r in answers if r.status_code == 201}
            # and whoever was refused pays the new price once they have seen it
            for n, s in enumerate(residents):
                if code(s.subject_id) not in paid:
                    again = await redeem(n, 12)
                    assert again.status_code == 201 and again.json()["total_points"] == 12, again.text
        balances = await market.balances()
        assert all(balances[s.subject_id] == (90 if code(s.subject_id) in paid else 88) for s in residents)
        print(f"\n{len(paid)} paid 10 before the change, {40 - len(paid)} refused and then paid 12")
