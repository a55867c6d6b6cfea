"""GET /ledger reads items and totals from one snapshot: while a 10,000-item certification is being
applied, 50 concurrent readers each get an answer that agrees with itself."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from services.declarations.ledger import LEDGER_COLUMNS
from shared.auth import Role
from shared.envelope import encode_body, headers, source_for
from shared.events.review import MonthCertified, PointsAwarded
from shared.kafka import producer_config
from shared.topics import REVIEW
from tests.integration.declarations.harness import NOW, InProcess, tok

pytestmark = pytest.mark.integration

COMMUNITY = "c-snap"
ITEMS = 10_000
AUDITOR = tok("aud-1", Role.auditor, "*")


async def seed_ledger(svc: InProcess) -> list[str]:
    """10,000 submitted items in the read model (as if declared; the ledger is only read here)."""
    ids = [f"snap-{n:05d}" for n in range(ITEMS)]
    rows: list[tuple[Any, ...]] = [
        (i, COMMUNITY, f"s-{n % 100:03d}", "resident", "HELP_MOVE", 1, "帮助搬家", "service_to_people", 1, 10, "oral",
         "declaration", dt.date(2026, 11, 3), "2026-11", "", "", [], "rec", "rec", None, "submitted", NOW,
         uuid.uuid4(), 1) for n, i in enumerate(ids)]
    async with svc.app.state.runtime.pool.acquire() as conn:
        await conn.copy_records_to_table("ledger", records=rows, columns=LEDGER_COLUMNS)
    return ids


async def certify(svc: InProcess, ids: list[str]) -> None:
    producer = AIOKafkaProducer(**producer_config(svc.settings))
    await producer.start()
    try:
        events: list[Any] = [PointsAwarded(item_id=i, community_id=COMMUNITY, month="2026-11", subject_id="s",
                                           category="resident", dimension="service_to_people",
                                           rule_code="HELP_MOVE", points=10) for i in ids]
        events.append(MonthCertified(community_id=COMMUNITY, month="2026-11", count=len(ids), total=10 * len(ids),
                                     digest="x", signed_by=("sec", "lg"), certified_at=NOW))
        for n, ev in enumerate(events, start=1):
            event_id = uuid.uuid4()
            await producer.send(
                REVIEW.name(svc.settings), value=encode_body(ev), key=COMMUNITY.encode(),
                headers=headers(event_id=event_id, source=source_for("review"), type_name=ev.type_name(),
                                stream_id=f"community-{COMMUNITY}", version=n, time=NOW, actor="review-test",
                                correlation_id=event_id, causation_id=None, prev_hash="0" * 64, digest="x"))
        await producer.flush()
    finally:
        await producer.stop()


async def test_given_a_certification_being_applied_then_every_ledger_answer_agrees_with_itself(
    svc: InProcess,
) -> None:
    ids = await seed_ledger(svc)
    done = asyncio.Event()
    answers: list[tuple[int, int, int, int]] = []  # items, their points, count, points

    async def reader() -> None:
        while not done.is_set():
            # one subject's 100 items (small answers, 50 readers): items and totals from the same snapshot
            r = await svc.http.get("/ledger", params={"community_id": COMMUNITY, "status": "certified",
                                                      "subject_id": "s-007"}, headers=AUDITOR)
            body = r.json()
            answers.append((len(body["items"]), sum(i["points"] for i in body["items"]), body["count"],
                            body["points"]))
            if body["count"] == ITEMS // 100:
                done.set()

    publishing = asyncio.create_task(certify(svc, ids))
    await asyncio.wait_for(asyncio.gather(publishing, *(reader() for _ in range(50))), 240)
    torn = [a for a in answers if (a[0], a[1]) != (a[2], a[3])]
    assert not torn, torn[:5]
    assert answers[-1][2] == ITEMS // 100
    assert len({a[2] for a in answers}) > 1, "the readers never saw the certification half applied"
