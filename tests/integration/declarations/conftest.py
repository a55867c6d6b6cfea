from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.declarations.harness import InProcess, fresh_settings, in_process, register_roster


@pytest.fixture(scope="module")
async def svc(stack: tuple[str, str]) -> AsyncIterator[InProcess]:
    """One in-process declarations service per test module (real Kafka and PostgreSQL), roster loaded."""
    settings = await fresh_settings(*stack)
    async with in_process(settings) as service:
        await register_roster(service)
        yield service
