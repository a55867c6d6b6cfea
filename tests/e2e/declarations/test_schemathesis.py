"""The declarations API against its own OpenAPI document: schemathesis (tests/support/fuzz.py: all
checks, stateful links where the document has them) against the service running as a process with real
Kafka and PostgreSQL, signed in as each role. Zero server errors, zero responses that break the schema.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.auth import Role
from tests.e2e.declarations.test_scripted_month import service_at
from tests.integration.declarations.harness import COMMUNITY, fresh_settings, register_roster
from tests.support.fuzz import As, fuzz_as
from tests.support.services import RunningService

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "8"))
SECONDS_PER_ROLE = int(os.environ.get("SCHEMATHESIS_SECONDS_PER_ROLE", "15"))
ROLES: dict[str, As] = {
    "recorder": (Role.recorder, COMMUNITY, ()),
    "supervisor": (Role.supervisor, COMMUNITY, ()),
    "declarant": (Role.declarant, COMMUNITY, ("p-xu",)),
    "site": (Role.site, COMMUNITY, ()),
    "leading_group": (Role.leading_group, COMMUNITY, ()),
    "secretary": (Role.secretary, COMMUNITY, ()),
    "clerk": (Role.clerk, COMMUNITY, ()),
    "auditor": (Role.auditor, "*", ()),
    "county_admin": (Role.county_admin, "*", ()),
}


@pytest.fixture(scope="module")
def service(stack: tuple[str, str]) -> Iterator[RunningService]:
    import asyncio

    import httpx

    settings = asyncio.run(fresh_settings(*stack))
    with service_at(settings, "2026-11-30T12:00:00+08:00") as svc:
        async def roster() -> None:
            async with httpx.AsyncClient(base_url=svc.url, timeout=30) as http:
                await register_roster(http)

        asyncio.run(roster())
        yield svc


@pytest.mark.parametrize("role", list(ROLES))
def test_given_each_role_then_no_server_error_and_no_response_breaks_the_schema(
    service: RunningService, role: str, tmp_path: Path
) -> None:
    fuzz_as(service.url, role, ROLES[role], tmp_path, max_examples=MAX_EXAMPLES, seconds=SECONDS_PER_ROLE)
