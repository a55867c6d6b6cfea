"""Kafka + PostgreSQL for test sessions.

Order of preference: ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` from the environment (an already
running stack), then testcontainers when a Docker engine answers, else a local KafkaServer and
PostgresServer on free ports under ``tmp_root`` (several sessions can run side by side).
Anything that cannot start raises: tests must fail loudly, never skip.

The local Kafka runs with SASL/SCRAM and ACLs like ``make up``'s, with secrets generated into the
stack's temporary folder. ``throwaway_stack`` puts the admin (super user) credential, the token secret
and ``POINTS_SECRETS_FILE`` into ``os.environ`` for its duration, so every ``Settings()`` of the test
process authenticates as admin; ``deploy.credentials.from_env()`` gives any other principal's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from deploy import credentials
from deploy.credentials import Secrets
from deploy.local import REPO_ROOT, KafkaServer, PostgresServer, ensure_kafka_libs, free_port, free_ports, kafka_ready

KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"  # testcontainers' KRaft support targets the Confluent image
POSTGRES_IMAGE = "postgres:16"


class StackHandle(NamedTuple):
    kafka: KafkaServer | None
    postgres: PostgresServer | None
    bootstrap: str
    dsn: str
    secrets: Secrets | None = None  # None: an external or container Kafka (credentials from the environment)


_containers: dict[tuple[str, str], list[Any]] = {}


def docker_available(timeout: float = 5.0) -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        res = subprocess.run(["docker", "info"], capture_output=True, timeout=timeout)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return res.returncode == 0


def _start_containers(need_kafka: bool, need_pg: bool) -> tuple[str | None, str | None, list[Any]]:
    started: list[Any] = []
    bootstrap = dsn = None
    try:
        if need_kafka:
            try:
                from testcontainers.community.kafka import KafkaContainer
            except ImportError:
                from testcontainers.kafka import KafkaContainer
            kafka = KafkaContainer(KAFKA_IMAGE).with_kraft()
            kafka.with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
            kafka.start()
            started.append(kafka)
            bootstrap = kafka.get_bootstrap_server()
        if need_pg:
            try:
                from testcontainers.community.postgres import PostgresContainer
            except ImportError:
                from testcontainers.postgres import PostgresContainer
            pg = PostgresContainer(POSTGRES_IMAGE, username="postgres", password="postgres", dbname="postgres",
                                   driver=None)  # fmt: skip
            pg.start()
            started.append(pg)
            dsn = pg.get_connection_url()
    except Exception as exc:
        for c in started:
            c.stop()
        raise RuntimeError(f"Docker answers but the test containers failed to start: {exc}") from exc
    return bootstrap, dsn, started


def start_test_stack(tmp_root: Path) -> StackHandle:
    """Return (kafka, postgres, bootstrap, dsn); the servers are None when not started by us."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    dsn = os.environ.get("DATABASE_URL")
    if bootstrap:
        from shared.kafka import client_config
        from shared.settings import Settings

        client = client_config(Settings(kafka_bootstrap_servers=bootstrap))
        client.pop("bootstrap_servers")
        if not kafka_ready(bootstrap, **client):
            raise RuntimeError(f"KAFKA_BOOTSTRAP_SERVERS={bootstrap} is set but Kafka does not answer there "
                               "(with the KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_* of the environment)")
    if bootstrap and dsn:
        return StackHandle(None, None, bootstrap, dsn, credentials.from_env())

    if docker_available():
        c_bootstrap, c_dsn, containers = _start_containers(bootstrap is None, dsn is None)
        bootstrap, dsn = bootstrap or c_bootstrap, dsn or c_dsn
        assert bootstrap and dsn
        _containers[(bootstrap, dsn)] = containers
        return StackHandle(None, None, bootstrap, dsn)

    tmp_root = Path(tmp_root)
    kafka: KafkaServer | None = None
    postgres: PostgresServer | None = None
    secrets: Secrets | None = None
    try:
        if dsn is None:
            postgres = PostgresServer(tmp_root / "postgres", free_port())
            postgres.start()
            dsn = postgres.dsn()
        if bootstrap is None:
            secrets = credentials.load_or_create(tmp_root / "secrets.json")
            port, controller_port = free_ports(2)
            kafka = KafkaServer(tmp_root / "kafka", port, controller_port, heap="768m",
                                lib_dir=ensure_kafka_libs(REPO_ROOT), secrets=secrets)  # fmt: skip
            kafka.start(timeout=90)
            bootstrap = kafka.bootstrap
        else:
            secrets = credentials.from_env()
    except Exception as exc:
        stop_test_stack(StackHandle(kafka, postgres, bootstrap or "", dsn or ""))
        raise RuntimeError(f"could not start the local test stack under {tmp_root}: {exc}") from exc
    return StackHandle(kafka, postgres, bootstrap, dsn, secrets)


def stop_test_stack(stack: StackHandle | tuple[Any, ...]) -> None:
    kafka, postgres, bootstrap, dsn = stack[:4]
    for c in _containers.pop((bootstrap, dsn), []):
        c.stop()
    if kafka is not None:
        kafka.stop()
    if postgres is not None:
        postgres.stop()


@contextlib.contextmanager
def throwaway_stack(prefix: str) -> Iterator[StackHandle]:
    """A test stack in a fresh temporary folder that is removed afterwards (a bench run leaves
    hundreds of megabytes of Kafka and PostgreSQL data). POINTS_KEEP_STACK=1 keeps the folder."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        handle = start_test_stack(root)
        try:
            with admin_environment(handle.secrets):
                yield handle
        finally:
            stop_test_stack(handle)
    finally:
        if not os.environ.get("POINTS_KEEP_STACK"):
            shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def admin_environment(secrets: Secrets | None) -> Iterator[None]:
    """``os.environ`` with the admin credential, the token secret (unless one is set) and
    ``POINTS_SECRETS_FILE`` while inside; restored afterwards."""
    if secrets is None:
        yield
        return
    from shared.settings import get_settings

    env = secrets.env(credentials.ADMIN, token=not os.environ.get("TOKEN_SECRET"))
    if secrets.path is not None:
        env[credentials.SECRETS_FILE_ENV] = str(secrets.path)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
