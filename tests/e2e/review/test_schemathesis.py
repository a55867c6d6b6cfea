"""The review API and its pages against their own OpenAPI document: schemathesis (tests/support/fuzz.py:
all checks, stateful links where the document has them) against the service running as a process with
real Kafka and PostgreSQL, holding a month of items, signed in as each role that acts on it. Zero server
errors, zero responses that break the schema (the public notice page included: HTML, and its 404 too).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.auth import Role
from tests.integration.review.support import ReviewUnderTest, declaration, review_service
from tests.support.fuzz import As, fuzz_as

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "5"))
SECONDS_PER_ROLE = int(os.environ.get("SCHEMATHESIS_SECONDS_PER_ROLE", "12"))
# What the stack holds: drawn half of the time, so the fuzzer gets past "other community" and "unknown item"
KNOWN = {"community_id": ["c-01"], "month": ["2026-10"], "item_id": [f"c-01-i{i:06d}" for i in range(4)]}
ROLES: dict[str, As] = {  # the county admin last: it may move the service's clock
    "recorder": (Role.recorder, "c-01", ()),
    "supervisor": (Role.supervisor, "c-01", ()),
    "declarant": (Role.declarant, "c-01", ("s-01",)),
    "secretary": (Role.secretary, "c-01", ()),
    "county_admin": (Role.county_admin, "*", ()),
}


@pytest.fixture(scope="module")
async def review(stack: tuple[str, str]) -> AsyncIterator[ReviewUnderTest]:
    async with review_service(stack, clock_adjustable=True) as r:
        await r.feed.publish([declaration(i, day=dt.date(2026, 10, 10)) for i in range(4)])
        yield r


@pytest.mark.parametrize("role", list(ROLES))
def test_given_each_role_then_no_server_error_and_no_response_breaks_the_schema(
    review: ReviewUnderTest, role: str, tmp_path: Path
) -> None:
    fuzz_as(review.service.url, f"review-{role}", ROLES[role], tmp_path, known=KNOWN,
            max_examples=MAX_EXAMPLES, seconds=SECONDS_PER_ROLE)
