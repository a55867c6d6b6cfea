"""Every record of a full demo run read right by the official CloudEvents SDK (``cloudevents``).

The four services run as processes (each its own database and Kafka credential), ``python -m
deploy.demo`` loads its whole story against them over HTTP (roster, a month through every
channel, verification, two members signing, a notice, this month's items), the relays publish
everything, and then the auditor principal reads every topic of the namespace from the start.
Every record converts to a CloudEvent in Kafka binary mode and back and through structured mode
and back, its chain link recomputes from the CloudEvent alone, and ``sequence`` sorts as text in
chain order within each source, 1..N with no gap. ``python -m shared.verify`` (as the auditor)
passes for each service's store against its topic.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from deploy import credentials
from deploy.local import settings_env
from shared.kafka import consumer_config
from shared.settings import Settings
from shared.topics import ALL, BY_SERVICE, DEAD_LETTER, acl_bindings, create_acls
from tests.support.conformance import (
    records_of,
    sequence_sorts_in_chain_order,
    then_a_cloudevents_consumer_reads_it_right,
)
from tests.support.services import RunningService, running_service
from tests.support.settings import as_principal, create_database

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("declarations", "review", "ranking", "exchange")


def all_published(services: list[RunningService], within: float = 30) -> None:
    """Every relay has published every row and every projection has caught up, twice in a row."""
    deadline, settled = time.monotonic() + within, 0
    while settled < 2:
        states = [httpx.get(f"{s.url}/readyz", timeout=5).json() for s in services]
        quiet = all(st["unpublished_events"] == 0 and all(p["lag"] == 0 for p in st["projections"].values())
                    for st in states)
        settled = settled + 1 if quiet else 0
        if time.monotonic() > deadline:
            raise AssertionError(f"relays or projections not done after {within}s: {states}")
        time.sleep(0.3)


async def topics_of_the_namespace(auditor: Settings) -> set[str]:
    consumer = AIOKafkaConsumer(**consumer_config(auditor), group_id=None)
    await consumer.start()
    try:
        return {t for t in await consumer.topics() if t.startswith(f"{auditor.topic_namespace}.")}
    finally:
        await consumer.stop()


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = env | {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


async def test_every_record_of_a_full_demo_run_converts_with_the_official_sdk_and_sequence_sorts(
    settings: Settings, tmp_path: Path,
) -> None:
    began = time.monotonic()
    dsn = {name: await create_database(settings, name) for name in SERVICES}
    auditor = as_principal(settings, credentials.AUDITOR)  # unchanged when the test Kafka has no SASL
    if credentials.from_env() is not None and settings.kafka_sasl_username == credentials.ADMIN:
        await create_acls(settings, acl_bindings(settings, services=(), auditor=credentials.AUDITOR))
        assert auditor.kafka_sasl_username == credentials.AUDITOR  # reads every topic, writes none

    with contextlib.ExitStack() as stack:
        services = [stack.enter_context(running_service(name, settings.model_copy(
            update={"database_url": dsn[name]}))) for name in SERVICES]
        url = {s.name: s.url for s in services}
        started = time.monotonic()

        demo = run(["-m", "deploy.demo"], dict(os.environ) | {
            "DECLARATIONS_URL": url["declarations"], "REVIEW_URL": url["review"], "RANKING_URL": url["ranking"],
            "EXCHANGE_URL": url["exchange"], "STACK_DIR": str(tmp_path)})  # TOKEN_SECRET: the session's
        assert demo.returncode == 0, demo.stdout + demo.stderr
        print(f"\n{demo.stdout.splitlines()[0]}")
        demo_done = time.monotonic()
        all_published(services)

        # the auditor's own check, store against topic, for each service
        for name in SERVICES:
            env = settings_env(auditor.model_copy(update={"database_url": dsn[name], "service_name": name}))
            env.pop("POINTS_SECRETS_FILE", None)  # the auditor's credential only
            verified = run(["-m", "shared.verify", "--service", name, "--json"], env)
            report = json.loads(verified.stdout or "{}")
            assert verified.returncode == 0, verified.stdout + verified.stderr
            assert report["ok"] and report["unpublished"] == 0 and report["repeats"] == 0, report
            print(f"verify {name}: exit 0, {report['store_events']} chained events = {report['topic_records']} "
                  "records on the topic")

    # every topic of the namespace, read from the start as the auditor
    topics = await topics_of_the_namespace(auditor)
    assert topics == {t.name(settings) for t in ALL}, topics
    per_topic: Counter[str] = Counter()
    per_type: Counter[str] = Counter()
    per_source: dict[str, int] = {}
    for topic in sorted(topics):
        records = await records_of(auditor, topic)
        per_topic[topic.rpartition(".")[2]] = len(records)
        if topic == DEAD_LETTER.name(settings):
            assert not records, [(r.headers, r.value) for _, r in records[:3]]  # nothing refused in a clean run
            continue
        converted = [then_a_cloudevents_consumer_reads_it_right(record, partition) for partition, record in records]
        per_type.update(c.type for c in converted)
        chains = sequence_sorts_in_chain_order(converted)
        assert len(chains) <= 1, f"{topic}: more than one source: {chains}"  # one log, one source
        per_source |= chains

    total = sum(per_topic.values())
    print(f"{total} records converted by the CloudEvents SDK (binary and structured) and back, "
          f"sequence 1..N in chain order in each of {len(per_source)} sources")
    for topic, n in sorted(per_topic.items()):
        print(f"  topic {topic:<13} {n:>5}")
    for type_name, n in sorted(per_type.items()):
        print(f"  {type_name:<64} {n:>5}")
    print(f"services up in {started - began:.1f}s, demo {demo_done - started:.1f}s, "
          f"total {time.monotonic() - began:.1f}s")
    assert per_topic[BY_SERVICE["declarations"].logical] > 0 and per_topic[BY_SERVICE["review"].logical] > 0
    assert total == sum(per_source.values())
