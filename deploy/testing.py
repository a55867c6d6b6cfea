"""Kafka + PostgreSQL for test sessions.

Order of preference: ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` from the environment (an already
running stack), then testcontainers when a Docker engine answers, else a local KafkaServer and
PostgresServer on free ports under ``tmp_root`` (several sessions can run side by side).
Anything that cannot start raises: tests must fail loudly, never skip.
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

from deploy.local import REPO_ROOT, KafkaServer, PostgresServer, ensure_kafka_libs, free_port, kafka_ready

KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"  # testcontainers' KRaft support targets the Confluent image
POSTGRES_IMAGE = "postgres:16"


class StackHandle(NamedTuple):
    kafka: KafkaServer | None
    postgres: PostgresServer | None
    bootstrap: str
    dsn: str


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
    if bootstrap and not kafka_ready(bootstrap):
        raise RuntimeError(f"KAFKA_BOOTSTRAP_SERVERS={bootstrap} is set but Kafka does not answer there")
    if bootstrap and dsn:
        return StackHandle(None, None, bootstrap, dsn)

    if docker_available():
        c_bootstrap, c_dsn, containers = _start_containers(bootstrap is None, dsn is None)
        bootstrap, dsn = bootstrap or c_bootstrap, dsn or c_dsn
        assert bootstrap and dsn
        _containers[(bootstrap, dsn)] = containers
        return StackHandle(None, None, bootstrap, dsn)

    tmp_root = Path(tmp_root)
    kafka: KafkaServer | None = None
    postgres: PostgresServer | None = None
    try:
        if dsn is None:
            postgres = PostgresServer(tmp_root / "postgres", free_port())
            postgres.start()
            dsn = postgres.dsn()
        if bootstrap is None:
            kafka = KafkaServer(tmp_root / "kafka", free_port(), free_port(), heap="768m",
                                lib_dir=ensure_kafka_libs(REPO_ROOT))  # fmt: skip
            kafka.start(timeout=90)
            bootstrap = kafka.bootstrap
    except Exception as exc:
        stop_test_stack(StackHandle(kafka, postgres, bootstrap or "", dsn or ""))
        raise RuntimeError(f"could not start the local test stack under {tmp_root}: {exc}") from exc
    return StackHandle(kafka, postgres, bootstrap, dsn)


def stop_test_stack(stack: StackHandle | tuple[Any, Any, str, str]) -> None:
    kafka, postgres, bootstrap, dsn = stack
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
            yield handle
        finally:
            stop_test_stack(handle)
    finally:
        if not os.environ.get("POINTS_KEEP_STACK"):
            shutil.rmtree(root, ignore_errors=True)
