"""A fresh database and topic namespace: tests never see each other's data."""

from __future__ import annotations

import os
import uuid
from typing import Any

import asyncpg

from deploy import credentials
from deploy.local import run_sync
from shared.settings import Settings
from shared.topics import BY_SERVICE, acl_bindings, create_acls, create_topics


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


async def create_database(settings: Settings, suffix: str) -> str:
    """A sibling database of the test's one (the review service and the declarations outbox each own one)."""
    base, _, name = settings.database_url.rpartition("/")
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(f'create database "{name}_{suffix}"')
    finally:
        await conn.close()
    return f"{base}/{name}_{suffix}"


def as_principal(settings: Settings, principal: str) -> Settings:
    """``settings`` authenticating to Kafka as ``principal`` (a service name, "auditor" or "admin").
    Unchanged when the test Kafka has no SASL (an external or container Kafka)."""
    secrets = credentials.from_env()
    if secrets is None:
        return settings
    return secrets.settings_for(settings, principal)  # type: ignore[no-any-return]


def as_service(settings: Settings, service: str) -> Settings:
    """``settings`` for a service process: its own Kafka credential, after creating (with the admin
    credential of ``settings``) its ACLs on the namespace of ``settings``."""
    secrets = credentials.from_env()
    if secrets is None or service not in BY_SERVICE or settings.kafka_sasl_username != credentials.ADMIN:
        return settings
    run_sync(create_acls(settings, acl_bindings(settings, services=(service,), auditor=None)))
    return as_principal(settings, service)
