"""Test fixtures: a real Kafka and a real PostgreSQL for integration and e2e tests.

KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when set; else testcontainers when a Docker engine
answers; else the local stack from deploy/ on free ports, for this test session only.
A service that cannot be started fails the run: nothing is skipped.

Kafka credentials: the test process is the admin (super user, see deploy/testing.py); services
started by tests get their own credential (tests/support/services.py). The token secret is random
per session: services refuse the public default (shared.settings.check_secrets).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from deploy.testing import throwaway_stack
from shared.events import load_catalogue
from shared.settings import Settings
from tests.support.settings import fresh_settings

load_catalogue()
os.environ.setdefault("TOKEN_SECRET", secrets.token_urlsafe(48))


@pytest.fixture(scope="session")
def stack() -> Iterator[tuple[str, str]]:
    with throwaway_stack("points-test-") as handle:
        yield handle.bootstrap, handle.dsn


@pytest.fixture
async def settings(stack: tuple[str, str]) -> Settings:
    """A fresh database and a fresh topic namespace per test: tests never see each other's data."""
    return await fresh_settings(*stack)


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=10)
    try:
        yield p
    finally:
        await asyncio.wait_for(p.close(), 10)
