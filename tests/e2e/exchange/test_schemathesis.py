"""The exchange API and its pages against their own OpenAPI document: schemathesis (tests/support/fuzz.py,
all checks) against the service running as a process with real Kafka and PostgreSQL, holding residents
with certified points and a stocked item, signed in as each role that acts on it. Zero server errors,
zero responses that break the schema."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.auth import Role
from tests.integration.exchange.support import COMMUNITY, Supermarket, code, list_item, subject, supermarket
from tests.support.fuzz import As, fuzz_as

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "5"))
SECONDS_PER_ROLE = int(os.environ.get("SCHEMATHESIS_SECONDS_PER_ROLE", "12"))
RESIDENTS = [subject(n) for n in range(3)]
# What the stack holds: drawn half of the time, so the fuzzer gets past "unknown member" and "unknown item"
KNOWN = {"community_id": [COMMUNITY], "month": ["2026-12"], "item_id": ["rice"],
         "member_code": [code(s.subject_id) for s in RESIDENTS]}
ROLES: dict[str, As] = {
    "clerk": (Role.clerk, COMMUNITY, ()),
    "clerk_elsewhere": (Role.clerk, "c-02", ()),
    "auditor": (Role.auditor, "*", ()),
    "county_admin": (Role.county_admin, "*", ()),
    "declarant": (Role.declarant, COMMUNITY, (RESIDENTS[0].subject_id,)),
}


@pytest.fixture(scope="module")
async def market(stack: tuple[str, str]) -> AsyncIterator[Supermarket]:
    async with supermarket(stack) as m:
        await m.roster(RESIDENTS)
        await m.certify(COMMUNITY, "2026-11", {s.subject_id: 1000 for s in RESIDENTS})
        await m.wait_for_balance(RESIDENTS[-1].subject_id, 1000)
        list_item(m.clerk(), "rice", price=1, stock=100_000)
        yield m


@pytest.mark.parametrize("role", list(ROLES))
def test_given_each_role_then_no_server_error_and_no_response_breaks_the_schema(
    market: Supermarket, role: str, tmp_path: Path
) -> None:
    fuzz_as(market.service.url, f"exchange-{role}", ROLES[role], tmp_path, known=KNOWN,
            max_examples=MAX_EXAMPLES, seconds=SECONDS_PER_ROLE)
