"""Every exchange event type on the exchange topic read right by the official CloudEvents SDK, and
the topic's chain equal to the service's store (shared.verify)."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest

from shared.events import catalogue
from shared.topics import EXCHANGE
from shared.verify import compare, read_store, read_topic
from tests.integration.exchange.support import COMMUNITY, code, list_item, subject, supermarket
from tests.support.conformance import (
    records_of,
    sequence_sorts_in_chain_order,
    then_a_cloudevents_consumer_reads_it_right,
)

pytestmark = pytest.mark.integration


async def test_every_exchange_event_type_converts_with_the_official_sdk_and_the_chain_holds(
        stack: tuple[str, str]) -> None:
    async with supermarket(stack) as market:
        # given every exchange command once: list, change price and limits, donate, redeem, return
        resident = subject(1)
        await market.roster([resident])
        await market.certify(COMMUNITY, "2026-11", {resident.subject_id: 100})
        await market.wait_for_balance(resident.subject_id, 100)
        clerk = market.clerk()
        list_item(clerk, "rice", price=10, stock=5)
        later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
        for path, body in (("/catalogue/items/rice/price", {"price": 12, "effective_from": later}),
                           ("/catalogue/items/rice/limits", {"limits": {"per_subject": 3}, "effective_from": later})):
            assert clerk.post(path, json=body, headers={"idempotency-key": f"k-{path}"}).status_code == 201
        r = clerk.post("/redemptions", headers={"idempotency-key": "k-redeem"},
                       json={"member_code": code(resident.subject_id), "lines": [{"item_id": "rice", "quantity": 1}]})
        assert r.status_code == 201, r.text
        back = clerk.post(f"/redemptions/{r.json()['redemption_id']}/return", json={"reason": "退货"},
                          headers={"idempotency-key": "k-return"})
        assert back.status_code == 201, back.text
        topic = EXCHANGE.name(market.settings)
        pool = await asyncpg.create_pool(market.settings.database_url, min_size=1, max_size=2)
        try:
            for _ in range(100):
                if not await pool.fetchval("select count(*) from events where published_at is null"):
                    break
                await asyncio.sleep(0.1)
            # then each record converts (binary and structured) and back, and the chain is the store's
            records = await records_of(market.settings, topic)
            converted = [then_a_cloudevents_consumer_reads_it_right(record, partition) for partition, record in records]
            assert list(sequence_sorts_in_chain_order(converted).values()) == [len(records)]
            async with pool.acquire() as conn:
                chained, legacy = await read_store(conn, topic)
            links, unchained, _ = await read_topic(market.settings, topic)
            report = compare(chained, links, legacy_store=legacy, unchained=unchained)
            assert report.ok, report.problems[:3]
        finally:
            await pool.close()
        types = {c.type for c in converted}
        assert types == {cls.type_name() for cls in catalogue() if cls.SERVICE == "exchange"}, types
