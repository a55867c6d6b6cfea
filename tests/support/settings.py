"""A fresh database and topic namespace: tests never see each other's data."""

from __future__ import annotations

import os
import uuid
from typing import Any

import asyncpg

from shared.settings import Settings
from shared.topics import create_topics


async def fresh_settings(bootstrap: str, dsn: str, **overrides: Any) -> Settings:
    name = f"t{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'create database "{name}"')
    finally:
        await admin.close()
    values: dict[str, Any] = {
        "database_url": f"{dsn.rpartition('/')[0]}/{name}", "kafka_bootstrap_servers": bootstrap,
        "topic_namespace": name, "topic_partitions": int(os.environ.get("TEST_TOPIC_PARTITIONS", "12")),
        "relay_idle_sleep_s": 0.01,
    }
    settings = Settings(**(values | overrides))
    await create_topics(settings)
    return settings
