"""The catalogue lives in the log: a county admin publishes a version for next month; this month's
items keep their points, next month's get the new ones, and a ledger rebuilt from offset 0 equals
the live one. A version that contradicts itself is refused with its reasons."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import asyncpg
import pytest

from services.declarations.catalogue_store import CatalogueCache
from services.declarations.context import DEFAULT_RULES
from services.declarations.domain.catalogue_log import definitions_from_seed
from services.declarations.ledger import LedgerProjection
from shared import replay
from shared.projection import table_digest
from tests.integration.declarations.harness import (
    ADMIN,
    COMMUNITY,
    NOW,
    RECORDER,
    InProcess,
)

pytestmark = pytest.mark.integration


def seed_rules(**changes: dict[str, Any]) -> list[dict[str, Any]]:
    """Version 1's rules as a request body, with some rules changed (by code)."""
    [(_, _, rules)] = definitions_from_seed(json.loads(DEFAULT_RULES.read_text(encoding="utf-8")))
    return [r.model_dump(mode="json") | changes.get(r.code, {}) for r in rules]


def move(day: str) -> dict[str, Any]:
    return {"community_id": COMMUNITY, "subject_id": "p-yang", "rule_code": "HELP_MOVE", "quantity": 1,
            "occurred_on": day, "channel": "oral"}


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"effective_month": "2026-11"}, 422, "effective_month_past"),  # NOW is 2026-11-30: this month is too late
    ({"effective_month": "2025-01"}, 422, "effective_month_past"),
    ({"rules": seed_rules(HELP_MOVE={"dimension": "magic"})}, 422, "catalogue_invalid"),
    ({"rules": seed_rules(HELP_MOVE={"categories": ["wizard"]})}, 422, "catalogue_invalid"),
    ({"rules": seed_rules(VIOLATION={"recorded_by": ["declarant"]})}, 422, "catalogue_invalid"),
    ({"effective_month": "2026-13"}, 422, "invalid_request"),
])
async def test_given_a_version_that_contradicts_itself_then_it_is_refused_with_a_reason(
    svc: InProcess, body: dict[str, Any], status: int, code: str
) -> None:
    before = await svc.events()
    r = await svc.post("/catalogue/versions", {"effective_month": "2026-12", "rules": seed_rules()} | body, ADMIN)
    assert (r.status_code, r.json()["error"]) == (status, code), r.text
    assert any("\u4e00" <= ch <= "\u9fff" for ch in r.json()["reason"])  # a Chinese reason
    assert await svc.events() == before


async def test_given_a_recorder_then_publishing_is_forbidden(svc: InProcess) -> None:
    r = await svc.post("/catalogue/versions", {"effective_month": "2026-12", "rules": seed_rules()}, RECORDER)
    assert (r.status_code, r.json()["error"]) == (403, "forbidden_role")


async def test_given_a_version_for_next_month_then_items_are_scored_by_the_version_of_their_month(
    svc: InProcess, stack: tuple[str, str]
) -> None:
    r = await svc.post("/catalogue/versions", {"effective_month": "2026-12", "note": "搬家互助加倍",
                                               "rules": seed_rules(HELP_MOVE={"points_per_unit": 20})}, ADMIN)
    assert r.status_code == 201, r.text
    assert (r.json()["version"], r.json()["effective_month"]) == (2, "2026-12")

    november = await svc.post("/declarations", move("2026-11-20"), RECORDER)
    assert november.json()["points"] == 10, november.text
    svc.set_now(dt.datetime(2026, 12, 2, 12, 0, tzinfo=NOW.tzinfo))
    try:
        december = await svc.post("/declarations", move("2026-12-01"), RECORDER)
        late_november = await svc.post("/declarations", move("2026-11-25"), RECORDER)
        rules = (await svc.http.get("/rules", params={"month": "2026-12"})).json()
    finally:
        svc.set_now(NOW)
    assert december.json()["points"] == 20, december.text
    assert late_november.json()["points"] == 10, late_november.text
    help_move = next(x for x in rules["rules"] if x["code"] == "HELP_MOVE")
    assert rules["version"] == 2 and help_move["points_per_unit"] == 20

    # A process that starts later reads the catalogue from the log, not from the file.
    async with svc.app.state.runtime.pool.acquire() as conn:
        catalogue, _ = await CatalogueCache(svc.app.state.runtime.store).current(conn)
    assert [(v.version, v.effective_month) for v in catalogue.versions] == [(1, "2026-01"), (2, "2026-12")]

    # The ledger, rebuilt from offset 0 elsewhere, equals the live one.
    for _ in range(200):
        r = await svc.http.get("/ledger", params={"community_id": COMMUNITY, "subject_id": "p-yang"},
                               headers=RECORDER)
        if len(r.json()["items"]) >= 3:
            break
        await asyncio.sleep(0.05)
    lines = {i["occurred_on"]: (i["points"], i["rule_version"]) for i in r.json()["items"]}
    assert lines == {"2026-11-20": (10, 1), "2026-12-01": (20, 2), "2026-11-25": (10, 1)}
    await asyncio.sleep(0.5)
    tables = (("ledger", "item_id"), ("ledger_subjects", "subject_id"))
    live = await asyncpg.connect(svc.settings.database_url)
    try:
        before = [await table_digest(live, t, o) for t, o in tables]
    finally:
        await live.close()
    pool = await asyncpg.create_pool(svc.settings.database_url, min_size=1, max_size=4)
    try:  # the replay builds a scratch schema beside the live tables, never touching them
        built = await replay.rebuild(pool, LedgerProjection(), svc.settings)
        async with pool.acquire() as conn:
            after = [await table_digest(conn, f"{built.schema}.{t}", o) for t, o in tables]
    finally:
        await pool.close()
    assert after == before
