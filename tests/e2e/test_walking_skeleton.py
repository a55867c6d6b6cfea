"""Walking skeleton: HTTP declaration -> event store -> relay -> Kafka -> ledger projection."""

from __future__ import annotations

import time
import uuid

import asyncpg
import httpx
import pytest

from shared.auth import Role
from shared.settings import Settings
from tests.support.services import running_service, token

pytestmark = pytest.mark.e2e


def declaration(subject: str = "p-001") -> dict[str, object]:
    return {"community_id": "c-01", "subject_id": subject, "rule_code": "HELP_MOVE", "quantity": 2,
            "occurred_on": "2026-11-20", "channel": "oral", "description": "帮助邻居搬家"}


def given_a_community_with_one_resident(http: httpx.Client) -> None:
    admin = {"authorization": f"Bearer {token('admin', Role.county_admin, '*')}"}
    for path, body in (
        ("/communities", {"community_id": "c-01", "name": "示例社区"}),
        ("/subjects", {"community_id": "c-01", "subjects": [{
            "subject_id": "p-001", "kind": "person", "name": "张三", "categories": ["resident"], "gender": "male",
            "registered_on": "2026-10-01"}]}),
    ):
        r = http.post(path, json=body, headers=admin | {"idempotency-key": str(uuid.uuid4())})
        assert r.status_code == 201, r.text


async def test_a_declaration_posted_over_http_shows_in_the_ledger_within_2_s(settings: Settings) -> None:
    with running_service("declarations", settings) as svc, svc.client(token("rec-1", Role.recorder, "c-01")) as http:
        given_a_community_with_one_resident(http)
        posted = time.monotonic()
        r = http.post("/declarations", json=declaration(), headers={"idempotency-key": str(uuid.uuid4())})
        assert r.status_code == 201, r.text
        item_id = r.json()["item_id"]
        while time.monotonic() - posted < 2.0:
            items = http.get("/ledger", params={"community_id": "c-01"}).json()["items"]
            if any(i["item_id"] == item_id for i in items):
                break
            time.sleep(0.02)
        else:
            raise AssertionError("declaration not in the ledger within 2 s")


@pytest.mark.parametrize(("body", "status", "error"), [
    (b"{not json", 400, "json_invalid"),
    (b'{"community_id": "c-01"}', 422, "invalid_request"),
    (b"\xff\xfe\xfa", 400, "json_invalid"),
    (b"[]", 422, "invalid_request"),
    (b"{" + b'"description": "' + b"x" * 300_000 + b'"}', 413, "body_too_large"),
])
async def test_a_malformed_body_gets_a_4xx_with_a_reason_and_no_event(
    settings: Settings, body: bytes, status: int, error: str
) -> None:
    with running_service("declarations", settings) as svc, svc.client(token("rec-1", Role.recorder, "c-01")) as http:
        r = http.post("/declarations", content=body, headers={"idempotency-key": str(uuid.uuid4()),
                                                             "content-type": "application/json"})
        assert r.status_code == status, r.text
        assert r.json()["error"] == error and r.json()["reason"]
    conn = await asyncpg.connect(settings.database_url)
    try:
        # the only events: the catalogue's seed version (declarations puts it on an empty log at start)
        assert await conn.fetchval("select count(*) from events where stream_id <> 'catalogue'") == 0
    finally:
        await conn.close()
