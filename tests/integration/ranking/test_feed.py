"""The dashboard feed as a dashboard sees it: GET /feed of a running ranking service (a process, as
``make up`` runs it) streams the ranking events as server-sent events while the dashboard is connected."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from shared.settings import Settings
from tests.integration.ranking.support import County, Outbox
from tests.support.services import running_service

pytestmark = pytest.mark.integration

SUBJECTS = [(f"c-01-s{i:02d}", f"居民{i:02d}", ("volunteer",), dt.date(2024, 12, 1), "female") for i in range(5)]


async def frames(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, dict[str, object]]]:
    """(event name, data) of each server-sent event; comments (keep-alives) skipped."""
    name = ""
    async for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, orjson.loads(line.removeprefix("data: "))


async def test_given_a_dashboard_connected_when_months_are_certified_then_their_rankings_arrive_as_server_sent_events(
    settings: Settings,
) -> None:
    declarations, review = await Outbox.start(settings, "declarations"), await Outbox.start(settings, "review")
    county = County(declarations, review, "c-01")
    try:
        await county.register(SUBJECTS)
        with running_service("ranking", settings, timeout=120) as ranking:
            async with httpx.AsyncClient(base_url=ranking.url, timeout=None) as client, \
                    client.stream("GET", "/feed") as response:
                # given: a dashboard connected to the feed
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                lines = response.aiter_lines()
                assert await anext(lines) == ": connected"

                # when: months are certified (the feed reads from the latest offset once its consumer is
                # assigned, which no endpoint shows: a month a few seconds apart until one is seen)
                async def certify() -> None:
                    for m in range(1, 7):
                        await county.certify(f"2025-{m:02d}", {(sid, "volunteer"): m * i for i, (sid, *_) in
                                                               enumerate(SUBJECTS)})
                        await asyncio.sleep(5)
                months = asyncio.create_task(certify())

                # then: the ranking of the community's month arrives as it reaches the topic, with its names
                async def first_ranking() -> dict[str, object]:
                    async for name, data in frames(lines):
                        if name == "RankingChanged":
                            return data
                    raise AssertionError("the feed ended")
                try:
                    seen = await asyncio.wait_for(first_ranking(), 60)
                finally:
                    months.cancel()
                assert str(seen["type"]).endswith(".RankingChanged.v1"), seen
                event = seen["data"]
                assert isinstance(event, dict) and event["community_id"] == "c-01" and event["category"] == "volunteer"
                assert {e["name"] for e in event["top"]} <= {name for _, name, *_ in SUBJECTS} and event["top"]
    finally:
        await declarations.close()
        await review.close()
