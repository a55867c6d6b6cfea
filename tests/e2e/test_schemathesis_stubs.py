"""The ranking service (health endpoints for now; the exchange: tests/e2e/exchange/test_schemathesis.py)
against its own OpenAPI document:
schemathesis (tests/support/fuzz.py, all checks), each service running as a process, one role each."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.auth import Role
from tests.support.fuzz import fuzz
from tests.support.services import running_service, token
from tests.support.settings import fresh_settings

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("service", ["ranking"])
async def test_given_a_stub_service_then_no_server_error_and_no_response_breaks_the_schema(
    stack: tuple[str, str], service: str, tmp_path: Path
) -> None:
    settings = await fresh_settings(*stack)
    with running_service(service, settings) as svc:
        fuzz(svc.url, service, tmp_path, bearer=token("st-admin", Role.county_admin, "*"), max_examples=5, seconds=10)
