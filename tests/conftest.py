"""Test fixtures: a real Kafka and a real PostgreSQL for integration and e2e tests.

KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when set; else testcontainers when a Docker engine
answers; else the local stack from deploy/ on free ports, for this test session only.
A service that cannot be started fails the run: nothing is skipped.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from deploy.testing import start_test_stack, stop_test_stack
from shared.events import load_catalogue
from shared.settings import Settings
from shared.topics import create_topics

load_catalogue()


@pytest.fixture(scope="session")
def stack() -> Iterator[tuple[str, str]]:
    root = Path(tempfile.mkdtemp(prefix="points-test-"))
    handle = start_test_stack(root)
    _kafka, _pg, bootstrap, dsn = handle
    try:
        yield bootstrap, dsn
    finally:
        stop_test_stack(handle)


def _with_database(dsn: str, database: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture
async def settings(stack: tuple[str, str]) -> AsyncIterator[Settings]:
    """A fresh database and a fresh topic namespace per test: tests never see each other's data."""
    bootstrap, dsn = stack
    name = f"t{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'create database "{name}"')
    finally:
        await admin.close()
    s = Settings(database_url=_with_database(dsn, name), kafka_bootstrap_servers=bootstrap, topic_namespace=name,
                 topic_partitions=int(os.environ.get("TEST_TOPIC_PARTITIONS", "12")), relay_idle_sleep_s=0.01)
    await create_topics(s)
    yield s


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=10)
    try:
        yield p
    finally:
        await asyncio.wait_for(p.close(), 10)


def settings_env(s: Settings) -> dict[str, str]:
    """The environment a child process needs to see the same settings."""
    return os.environ | {k.upper(): str(v) for k, v in s.model_dump().items() if v is not None}
