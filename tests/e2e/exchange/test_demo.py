"""The supermarket part of ``make up`` (deploy/demo_exchange.py) against a real exchange service."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from deploy import demo, demo_exchange
from shared.events.declarations import SubjectRegistered
from tests.integration.exchange.support import supermarket

pytestmark = pytest.mark.e2e


async def test_given_the_demo_month_certified_then_the_supermarket_is_stocked_and_serves_members(
        stack: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    async with supermarket(stack) as market:
        people = [("p-xu", "徐科品", ("party_member", "building_head")), ("p-he", "何志远", ("volunteer",)),
                  ("p-luo", "罗开英", ("party_member", "volunteer")), ("p-zhao", "赵桂兰", ("property_staff",))]
        await market.roster([SubjectRegistered(subject_id=s, community_id=demo.COMMUNITY, kind="person", name=n,
                                               categories=c, registered_on=dt.date(2025, 1, 1)) for s, n, c in people],
                            community=demo.COMMUNITY, name="示例安置社区")
        await market.certify(demo.COMMUNITY, "2026-11", {"p-xu": 180, "p-he": 26, "p-luo": 30, "p-zhao": 40})
        demo_exchange.EXCHANGE_URL = market.service.url
        for _ in range(2):  # a rerun changes nothing
            await asyncio.to_thread(demo_exchange.run, demo.COMMUNITY, demo.token, "2026-11")
        out = capsys.readouterr().out
        assert "3 redemptions, 1 returned" in out and "/login?token=" in out, out
        assert "仅限特定类别" in out and "积分不足" in out, out
        print(out)
