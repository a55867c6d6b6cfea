"""The ranking API and its board against their own OpenAPI document: schemathesis (tests/support/fuzz.py,
all checks) against the service running as a process with real Kafka and PostgreSQL, holding three
certified months, signed in as each role. Zero server errors, zero responses that break the schema."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shared.auth import Role
from tests.integration.ranking.support import County, Outbox, eventually
from tests.support.fuzz import As, fuzz_as
from tests.support.services import RunningService, running_service
from tests.support.settings import fresh_settings

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "5"))
SECONDS_PER_ROLE = int(os.environ.get("SCHEMATHESIS_SECONDS_PER_ROLE", "12"))
KNOWN = {"community_id": ["c-01"], "scope": ["c-01", "county"], "month": ["2025-02"],
         "period": ["2025-02", "2025-Q1", "2025"], "category": ["party_member", "resident"],
         "subject_id": ["s-1", "s-2", "s-3"], "community": ["c-01"]}
ROLES: dict[str, As] = {
    "recorder": (Role.recorder, "c-01", ()),
    "declarant": (Role.declarant, "c-01", ("s-1",)),
    "secretary": (Role.secretary, "c-01", ()),
    "county_admin": (Role.county_admin, "*", ()),
}


@pytest.fixture(scope="module")
async def ranking(stack: tuple[str, str]) -> AsyncIterator[RunningService]:
    settings = await fresh_settings(*stack)
    declarations, review = await Outbox.start(settings, "declarations"), await Outbox.start(settings, "review")
    county = County(declarations, review)
    await county.register([(f"s-{i}", name, cats, dt.date(2024, 12, 1), gender) for i, (name, cats, gender) in
                           enumerate([("徐科品", ("party_member",), "male"), ("罗开英", ("party_member", "resident"),
                                      "female"), ("张阿妹", ("resident",), "female")], start=1)])
    for m in ("2025-01", "2025-02", "2025-03"):
        await county.certify(m, {("s-1", "party_member"): 30, ("s-2", "party_member"): 20, ("s-2", "resident"): 5,
                                 ("s-3", "resident"): 9})
    try:
        with running_service("ranking", settings) as svc:
            async def ready() -> bool:
                return httpx.get(f"{svc.url}/rankings", params={"scope": "c-01", "category": "resident",
                                                                "period": "2025-Q1"}).status_code == 200
            await eventually(ready, 60, "the rankings")
            yield svc
    finally:
        await declarations.close()
        await review.close()


@pytest.mark.parametrize("role", list(ROLES))
def test_given_each_role_then_no_server_error_and_no_response_breaks_the_schema(
    ranking: RunningService, role: str, tmp_path: Path
) -> None:
    fuzz_as(ranking.url, f"ranking-{role}", ROLES[role], tmp_path, known=KNOWN,
            max_examples=MAX_EXAMPLES, seconds=SECONDS_PER_ROLE)
