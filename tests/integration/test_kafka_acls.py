"""Authenticated writers: Kafka itself refuses a service writing another service's topic, lets the
auditor read every topic and write none, and turns away a wrong password."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

from deploy import credentials
from shared.kafka import client_config, producer_config
from shared.projection import partitions_of
from shared.settings import Settings
from shared.topics import (
    ALL,
    DEAD_LETTER,
    DECLARATIONS,
    RANKING,
    REVIEW,
    AclBinding,
    Op,
    Pattern,
    Resource,
    acl_bindings,
    create_acls,
    upsert_scram_users,
)
from tests.support.settings import as_principal

pytestmark = pytest.mark.integration


@pytest.fixture
async def acl_settings(settings: Settings) -> Settings:
    if credentials.from_env() is None or settings.kafka_sasl_username != credentials.ADMIN:
        pytest.fail("the test Kafka has no SASL/ACLs (external or container Kafka): this test needs the local stack")
    await create_acls(settings, acl_bindings(settings))
    return settings


async def produce(settings: Settings, topic: str, *, idempotent: bool = True) -> None:
    cfg = producer_config(settings) if idempotent else client_config(settings) | {"request_timeout_ms": 10000}
    producer = AIOKafkaProducer(**cfg)
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, b"{}", key=b"k"), 30)
    finally:
        await producer.stop()


async def read_all(settings: Settings, topics: list[str]) -> dict[str, int]:
    """How many records each topic holds, read from offset 0 to its end."""
    consumer = AIOKafkaConsumer(**client_config(settings), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")  # fmt: skip
    await consumer.start()
    try:
        tps = await partitions_of(consumer, topics)
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        counts = dict.fromkeys(topics, 0)
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            for tp, records in (await consumer.getmany(*remaining, timeout_ms=1000)).items():
                counts[tp.topic] += len(records)
                if records and records[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
        return counts
    finally:
        await consumer.stop()


async def test_the_declarations_credential_writes_its_own_topic_and_is_refused_on_the_review_topic(
    acl_settings: Settings,
) -> None:
    declarations = as_principal(acl_settings, "declarations")
    assert declarations.kafka_sasl_username == "declarations"
    await produce(declarations, DECLARATIONS.name(acl_settings))  # its own topic: allowed
    await produce(declarations, DEAD_LETTER.name(acl_settings))  # the dead-letter topic: allowed
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(declarations, REVIEW.name(acl_settings))
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(declarations, REVIEW.name(acl_settings), idempotent=False)
    # and nothing landed there
    assert (await read_all(acl_settings, [REVIEW.name(acl_settings)]))[REVIEW.name(acl_settings)] == 0
    # review, which consumes declarations, reads them
    review = as_principal(acl_settings, "review")
    assert (await read_all(review, [DECLARATIONS.name(acl_settings)]))[DECLARATIONS.name(acl_settings)] == 1


async def test_the_auditor_reads_every_topic_and_writes_none(acl_settings: Settings) -> None:
    names = [t.name(acl_settings) for t in ALL]
    for name in names:  # one record on each topic, written by the super user
        await produce(acl_settings, name)
    auditor = as_principal(acl_settings, "auditor")
    assert await read_all(auditor, names) == dict.fromkeys(names, 1)
    for name in names:
        with pytest.raises(TopicAuthorizationFailedError):
            await produce(auditor, name, idempotent=False)
    with pytest.raises(KafkaError):  # no write anywhere: not even an idempotent producer id
        await produce(auditor, names[0])
    assert await read_all(acl_settings, names) == dict.fromkeys(names, 1)


async def test_a_wrong_password_or_no_credential_cannot_connect(acl_settings: Settings) -> None:
    wrong = as_principal(acl_settings, "declarations").model_copy(update={"kafka_sasl_password": "not-the-password"})
    anonymous = acl_settings.model_copy(update={"kafka_security_protocol": "PLAINTEXT", "kafka_sasl_mechanism": None,
                                                "kafka_sasl_username": None, "kafka_sasl_password": None})
    for s in (wrong, anonymous):
        admin = AIOKafkaAdminClient(**client_config(s), request_timeout_ms=5000)
        with pytest.raises((KafkaError, asyncio.TimeoutError)):
            try:
                await asyncio.wait_for(admin.start(), 20)
                await asyncio.wait_for(admin.list_topics(), 10)
            finally:
                with contextlib.suppress(Exception):
                    await admin.close()


async def test_a_principal_added_after_start_authenticates_and_gets_only_its_acls(acl_settings: Settings) -> None:
    password = "n" * 40
    await upsert_scram_users(acl_settings, {"newcomer": password})
    await create_acls(acl_settings, [AclBinding("newcomer", Resource.TOPIC, RANKING.name(acl_settings),
                                                Pattern.LITERAL, Op.WRITE)])  # fmt: skip
    newcomer = acl_settings.model_copy(update={"kafka_sasl_username": "newcomer", "kafka_sasl_password": password})
    await produce(newcomer, RANKING.name(acl_settings))
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(newcomer, REVIEW.name(acl_settings), idempotent=False)
