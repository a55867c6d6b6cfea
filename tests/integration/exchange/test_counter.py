"""The counter over HTTP against a real exchange service, Kafka and Postgres: balances from the log,
redemptions, returns, and every misuse from the issue refused in zh-CN with nothing changed."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from tests.integration.exchange.support import COMMUNITY, code, list_item, subject, supermarket

pytestmark = pytest.mark.integration


async def counts(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return (await conn.fetchval("select count(*) from events"),
                await conn.fetchval("select coalesce(sum(received - redeemed + returned), 0) from stock"))
    finally:
        await conn.close()


async def test_given_certified_and_pending_points_then_the_counter_redeems_returns_and_refuses_misuse(
        stack: tuple[str, str]) -> None:
    async with supermarket(stack) as market:
        # given two residents with certified points, one with points still in review, and one from elsewhere
        a, b = subject(1), subject(2)
        await market.roster([a, b], pending={b.subject_id: 50})
        await market.roster([subject(9, community="c-02")], community="c-02", name="别的社区")
        await market.certify(COMMUNITY, "2026-11", {a.subject_id: 50, b.subject_id: 5})
        await market.wait_for_balance(a.subject_id, 50)
        await market.wait_for_balance(b.subject_id, 5)
        clerk = market.clerk()
        list_item(clerk, "rice", price=10, stock=3)
        member = clerk.get(f"/members/{code(b.subject_id)}").json()
        assert (member["spendable"], member["pending"], member["name"]) == (5, 50, "居民00002")

        # when a redemption is made, then it is repeated with the same key
        body = {"member_code": code(a.subject_id).lower().replace("-", ""), "lines": [{"item_id": "rice", "quantity": 2,
                                                                                       "price": 10}]}
        first = clerk.post("/redemptions", headers={"idempotency-key": "k-redeem-1"}, json=body)
        again = clerk.post("/redemptions", headers={"idempotency-key": "k-redeem-1"}, json=body)
        assert first.status_code == again.status_code == 201 and first.json() == again.json()
        assert first.json()["balance_after"] == 30
        rid = first.json()["redemption_id"]
        before = await counts(market.settings.database_url)
        assert before[1] == 1

        # then each misuse is refused in zh-CN and changes nothing
        def refused(path: str, json: dict, status: int, error: str, client=clerk) -> None:  # type: ignore[no-untyped-def]
            r = client.post(path, headers={"idempotency-key": f"k-{uuid.uuid4()}"}, json=json)
            assert (r.status_code, r.json()["error"]) == (status, error), r.text
            assert any("\u4e00" <= ch <= "\u9fff" for ch in r.json()["reason"]), r.text

        line = {"item_id": "rice", "quantity": 1}
        refused("/redemptions", {"member_code": "HZ-00000-00000", "lines": [line]}, 404, "member_not_found")
        refused("/redemptions", {"member_code": code(a.subject_id), "lines": [{"item_id": "soap", "quantity": 1}]},
                404, "item_not_found")
        refused("/redemptions", {"member_code": code(a.subject_id), "lines": [{"item_id": "rice", "quantity": 0}]},
                422, "invalid_request")
        refused("/redemptions", {"member_code": code(a.subject_id), "lines": [{"item_id": "rice", "quantity": 1,
                                                                              "price": 9}]}, 409, "price_changed")
        refused("/redemptions", {"member_code": code(a.subject_id), "lines": [{"item_id": "rice", "quantity": 2}]},
                409, "out_of_stock")
        refused("/redemptions", {"member_code": code(b.subject_id), "lines": [line]}, 422, "pending_not_spendable")
        refused("/redemptions", {"member_code": code(subject(9, community="c-02").subject_id), "lines": [line]},
                403, "other_community")
        refused("/redemptions/nope/return", {"reason": "质量问题"}, 404, "redemption_not_found")
        refused(f"/redemptions/{rid}/return", {"reason": "质量问题"}, 403, "forbidden_community",
                client=market.clerk("c-02", "clerk-9"))
        refused("/donations", {"item_id": "rice", "donor": "某企业", "quantity": 5, "received_on": "2049-01-01"},
                422, "date_in_future")
        refused("/donations", {"item_id": "soap", "donor": "某企业", "quantity": 5, "received_on": "2026-01-01"},
                404, "item_not_found")
        refused("/catalogue/items/rice/price", {"price": 5, "effective_from": "2026-01-01T00:00:00+08:00"},
                422, "effective_in_past")
        refused("/catalogue/items", {"item_id": "rice", "community_id": COMMUNITY, "name": "又一个大米", "price": 3},
                409, "item_exists")
        refused("/catalogue/items", {"item_id": "tea", "community_id": "c-02", "name": "茶叶", "price": 3},
                403, "forbidden_community")
        reused = clerk.post("/redemptions", headers={"idempotency-key": "k-redeem-1"},
                            json={"member_code": code(a.subject_id), "lines": [line]})
        assert (reused.status_code, reused.json()["error"]) == (409, "idempotency_key_reused")
        assert await counts(market.settings.database_url) == before

        # when the redemption is returned, then points and stock come back, and a second return is refused
        back = clerk.post(f"/redemptions/{rid}/return", headers={"idempotency-key": "k-return-1"},
                          json={"reason": "包装破损"})
        assert back.status_code == 201, back.text
        assert clerk.get(f"/members/{code(a.subject_id)}").json()["spendable"] == 50
        refused(f"/redemptions/{rid}/return", {"reason": "包装破损"}, 409, "already_returned")
        assert (await counts(market.settings.database_url))[1] == 3
        stats = clerk.get(f"/statistics/{COMMUNITY}/{first.json()['lines'][0]['period_key']}").json()
        assert (stats["items_exchanged"], stats["points_spent"], stats["returns"]) == (0, 0, 1)
        assert (stats["residents"], stats["top_items"][0]["name"]) == (1, "大米")
        # and the donor report names the donor, the goods and the quantity
        donors = clerk.get(f"/donors/{COMMUNITY}/{first.json()['lines'][0]['period_key']}").json()
        assert [(d["donor"], d["item_name"], d["quantity"]) for d in donors["donors"]] == [("贵州爱心企业", "大米", 3)]
        assert donors["community_name"] == "安置社区"
