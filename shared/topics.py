"""The topic registry: every topic named here and nowhere else, with its key and settings.

Topics are the county's immutable history: no compaction, infinite retention.
Run ``python -m shared.topics create`` to create them and, when Kafka uses SASL, the ACLs of every
principal on them (idempotent; needs the admin credential).

Who may do what (``acl_bindings``; the broker denies everything else, ``allow.everyone.if.no.acl.found``
is false): each service writes only its own topic and the dead-letter topic, reads its own topic and
what it consumes (``CONSUMES``) and uses consumer groups under the namespace; ``auditor`` reads every
topic of the namespace and writes none; ``admin`` is a super user (creates topics and ACLs).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeAlias

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

from shared.kafka import client_config
from shared.settings import Settings, get_settings
from shared.sites import SITE_SERVICE, Site, registry
from shared.sites import group_prefix as site_group_prefix


@dataclass(frozen=True)
class Topic:
    logical: str
    key: str  # what the record key is
    doc: str

    def name(self, settings: Settings | None = None) -> str:
        return f"{(settings or get_settings()).topic_namespace}.{self.logical}"


DECLARATIONS = Topic("declarations", "subject id (roster and points items); rule code for the catalogue",
                     "Roster, rule catalogue, declarations, deductions, activities.")
REVIEW = Topic("review", "community id: one ordered stream per community",
               "Verification, monthly certification, public notice, objections, corrections.")
RANKING = Topic("ranking", "community id", "Rankings, consequences, talks, role models.")
EXCHANGE = Topic("exchange", "subject id (redemptions); community id (catalogue, donations)",
                 "Love Supermarket stock, balances, redemptions.")
DEAD_LETTER = Topic("deadletter", "original key", "Records a consumer could not decode or apply, with the reason.")

ALL = (DECLARATIONS, REVIEW, RANKING, EXCHANGE, DEAD_LETTER)
BY_SERVICE = {"declarations": DECLARATIONS, "review": REVIEW, "ranking": RANKING, "exchange": EXCHANGE}
# What each service's consumers subscribe to (its projections' ``topics``), besides its own topic.
CONSUMES: dict[str, tuple[Topic, ...]] = {
    "declarations": (REVIEW,),  # ledger, certified months
    "review": (DECLARATIONS,),  # items to verify
    "ranking": (DECLARATIONS, REVIEW),
    "exchange": (DECLARATIONS, REVIEW),
}
AUDITOR = "auditor"  # the Kafka principal that reads everything and writes nothing


def topic_configs(settings: Settings) -> dict[str, str]:
    return {
        "retention.ms": "-1",
        "retention.bytes": "-1",
        "cleanup.policy": "delete",
        "min.insync.replicas": str(settings.topic_min_insync_replicas),
    }


async def create_topics(settings: Settings | None = None, topics: tuple[Topic, ...] = ALL) -> list[str]:
    """Create missing topics; returns the names that were created."""
    settings = settings or get_settings()
    admin = AIOKafkaAdminClient(**client_config(settings))
    await admin.start()
    created = []
    try:
        existing = set(await admin.list_topics())
        for topic in topics:
            name = topic.name(settings)
            if name in existing:
                continue
            response = await admin.create_topics([NewTopic(
                name=name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication_factor,
                topic_configs=topic_configs(settings),
            )])
            for error in response.topic_errors:
                code = error[1]
                if code == TopicAlreadyExistsError.errno:
                    continue
                if code != 0:
                    raise RuntimeError(f"cannot create topic {error[0]}: error {code} {error[2:]}")
                created.append(name)
    finally:
        await admin.close()
    return created


# ---------------------------------------------------------------------------------------------------------
# ACLs. aiokafka's admin client has no ACL call and its CreateAcls request stops at v1, which Kafka 4
# no longer accepts (KIP-896): v2/v3 (flexible encoding) are declared here on aiokafka's protocol types.


class Resource(IntEnum):
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class Pattern(IntEnum):
    LITERAL = 3
    PREFIXED = 4


class Op(IntEnum):
    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8
    DESCRIBE_CONFIGS = 10


ALLOW = 3  # AclPermissionType


@dataclass(frozen=True, order=True)
class AclBinding:
    principal: str  # a SCRAM user name, without "User:"
    resource: Resource
    name: str
    pattern: Pattern
    operation: Op

    def __str__(self) -> str:
        star = "*" if self.pattern is Pattern.PREFIXED else ""
        return f"User:{self.principal} {self.operation.name} {self.resource.name}:{self.name}{star}"


def group_prefix(settings: Settings) -> str:
    """Every consumer group id of a namespace starts with this: the services' ACLs allow exactly these."""
    return f"{settings.topic_namespace}."


def acl_bindings(settings: Settings, services: tuple[str, ...] = tuple(BY_SERVICE),
                 auditor: str | None = AUDITOR, sites: tuple[Site, ...] | None = None) -> list[AclBinding]:  # fmt: skip
    """Every ACL of the namespace: the service principals (named as the services), the auditor, and
    each community site of the registry (``sites``; default: ``SITES``), as ``site-<name>``."""
    ns = settings.topic_namespace
    out: list[AclBinding] = []

    def topic(who: str, t: Topic, *ops: Op) -> None:
        out.extend(AclBinding(who, Resource.TOPIC, t.name(settings), Pattern.LITERAL, op) for op in ops)

    for service in services:
        own = BY_SERVICE[service]
        topic(service, own, Op.WRITE, Op.READ, Op.DESCRIBE)
        topic(service, DEAD_LETTER, Op.WRITE, Op.DESCRIBE)
        for t in CONSUMES.get(service, ()):
            topic(service, t, Op.READ, Op.DESCRIBE)
        # Consumer groups: the runner names them "<namespace>.…" (deployment, projection).
        out.append(AclBinding(service, Resource.GROUP, group_prefix(settings), Pattern.PREFIXED, Op.READ))
    # A site: the intake side of one community. It writes the declarations topic (its own source and
    # community are checked by every consumer: shared/sites.py), reads the review topic, and uses
    # consumer groups of its own only ("<namespace>.<deployment>.site-<name>.", shared.sites.group_prefix).
    site_service = BY_SERVICE[SITE_SERVICE]
    for site in registry(settings) if sites is None else sites:
        topic(site.principal, site_service, Op.WRITE, Op.READ, Op.DESCRIBE)
        topic(site.principal, DEAD_LETTER, Op.WRITE, Op.DESCRIBE)
        for t in CONSUMES.get(SITE_SERVICE, ()):
            topic(site.principal, t, Op.READ, Op.DESCRIBE)
        groups = site_group_prefix(settings.model_copy(update={"site": site.name}))
        out.append(AclBinding(site.principal, Resource.GROUP, groups, Pattern.PREFIXED, Op.READ))
    if auditor:
        for op in (Op.READ, Op.DESCRIBE, Op.DESCRIBE_CONFIGS):
            out.append(AclBinding(auditor, Resource.TOPIC, f"{ns}.", Pattern.PREFIXED, op))
        out.append(AclBinding(auditor, Resource.GROUP, f"{group_prefix(settings)}{auditor}", Pattern.PREFIXED,
                              Op.READ))  # fmt: skip
    return out


class CreateAclsResponse_v2(Response):
    API_KEY = 30
    API_VERSION = 2
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("results", CompactArray(("error_code", Int16), ("error_message", CompactString("utf-8")),
                                 ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )  # fmt: skip


class CreateAclsResponse_v3(Response):
    API_KEY = 30
    API_VERSION = 3
    SCHEMA = CreateAclsResponse_v2.SCHEMA


_CREATIONS = CompactArray(
    ("resource_type", Int8), ("resource_name", CompactString("utf-8")), ("resource_pattern_type", Int8),
    ("principal", CompactString("utf-8")), ("host", CompactString("utf-8")), ("operation", Int8),
    ("permission_type", Int8), ("tags", TaggedFields),
)  # fmt: skip


class CreateAclsRequest_v2(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 30
    API_VERSION = 2
    RESPONSE_TYPE = CreateAclsResponse_v2
    SCHEMA = Schema(("creations", _CREATIONS), ("tags", TaggedFields))


class CreateAclsRequest_v3(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 30
    API_VERSION = 3
    RESPONSE_TYPE = CreateAclsResponse_v3
    SCHEMA = CreateAclsRequest_v2.SCHEMA


CreateAclsStruct: TypeAlias = CreateAclsRequest_v2 | CreateAclsRequest_v3


class CreateAcls(Request[CreateAclsStruct]):
    API_KEY = 30

    def __init__(self, bindings: list[AclBinding]) -> None:
        self.bindings = bindings

    def build(self, request_struct_class: type[CreateAclsStruct]) -> CreateAclsStruct:
        return request_struct_class(
            [(b.resource, b.name, b.pattern, f"User:{b.principal}", "*", b.operation, ALLOW, {})
             for b in self.bindings], {})  # fmt: skip


class DescribeAclsResponse_v2(Response):
    API_KEY = 29
    API_VERSION = 2
    SCHEMA = Schema(
        ("throttle_time_ms", Int32), ("error_code", Int16), ("error_message", CompactString("utf-8")),
        ("resources", CompactArray(
            ("resource_type", Int8), ("resource_name", CompactString("utf-8")), ("pattern_type", Int8),
            ("acls", CompactArray(("principal", CompactString("utf-8")), ("host", CompactString("utf-8")),
                                  ("operation", Int8), ("permission_type", Int8), ("tags", TaggedFields))),
            ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )  # fmt: skip


class DescribeAclsRequest_v2(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 29
    API_VERSION = 2
    RESPONSE_TYPE = DescribeAclsResponse_v2
    SCHEMA = Schema(
        ("resource_type_filter", Int8), ("resource_name_filter", CompactString("utf-8")),
        ("pattern_type_filter", Int8), ("principal_filter", CompactString("utf-8")),
        ("host_filter", CompactString("utf-8")), ("operation", Int8), ("permission_type", Int8),
        ("tags", TaggedFields),
    )  # fmt: skip


class DescribeAllAcls(Request[DescribeAclsRequest_v2]):
    API_KEY = 29

    def build(self, request_struct_class: type[DescribeAclsRequest_v2]) -> DescribeAclsRequest_v2:
        return request_struct_class(1, None, 1, None, None, 1, 1, {})  # ANY of everything


async def describe_acls(admin: AIOKafkaAdminClient) -> set[AclBinding]:
    """The ALLOW bindings the broker enforces right now (its own view, not the controller's)."""
    response: Any = await admin._send_request(DescribeAllAcls())  # private: no public ACL API
    if response.error_code:
        raise RuntimeError(f"DescribeAcls failed: error {response.error_code} {response.error_message or ''}")
    out = set()
    for rtype, rname, pattern, acls, _ in response.resources:
        for principal, _host, op, permission, _ in acls:
            if permission == ALLOW and principal.startswith("User:") and op in Op._value2member_map_:
                out.add(AclBinding(principal[5:], Resource(rtype), rname, Pattern(pattern), Op(op)))
    return out


async def create_acls(settings: Settings, bindings: list[AclBinding], wait_s: float = 30.0) -> int:
    """Create ``bindings`` (idempotent: an existing binding is no error) with the admin credential
    of ``settings`` and wait until the broker enforces them (ACLs reach it through the metadata log a
    moment later); returns how many were sent. RuntimeError naming the first refused binding."""
    if not bindings:
        return 0
    admin = AIOKafkaAdminClient(**client_config(settings))
    await admin.start()
    try:
        response: Any = await admin._send_request(CreateAcls(bindings))  # private: no public ACL API
        for binding, (code, message, *_) in zip(bindings, response.results, strict=True):
            if code != 0:
                raise RuntimeError(f"Kafka refused the ACL {binding}: error {code} {message or ''}".rstrip())
        deadline = asyncio.get_running_loop().time() + wait_s
        while missing := set(bindings) - await describe_acls(admin):
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"{len(missing)} ACLs not in force after {wait_s}s, e.g. {min(missing)}")
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
    return len(bindings)


class AlterUserScramCredentialsResponse_v0(Response):
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("results", CompactArray(("user", CompactString("utf-8")), ("error_code", Int16),
                                 ("error_message", CompactString("utf-8")), ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )  # fmt: skip


class AlterUserScramCredentialsRequest_v0(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = AlterUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        ("deletions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields))),
        ("upsertions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("iterations", Int32),
                                    ("salt", CompactBytes), ("salted_password", CompactBytes), ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )  # fmt: skip


SCRAM_MECHANISMS = {"SCRAM-SHA-256": (1, "sha256"), "SCRAM-SHA-512": (2, "sha512")}
SCRAM_ITERATIONS = 8192


class UpsertScramUsers(Request[AlterUserScramCredentialsRequest_v0]):
    API_KEY = 51

    def __init__(self, users: dict[str, str], mechanism: str) -> None:
        self.users = users
        self.mechanism = mechanism

    def build(self, request_struct_class: type[AlterUserScramCredentialsRequest_v0]
              ) -> AlterUserScramCredentialsRequest_v0:  # fmt: skip
        code, digest = SCRAM_MECHANISMS[self.mechanism]
        upserts: list[tuple[Any, ...]] = []
        for name, password in sorted(self.users.items()):
            salt = os.urandom(32)
            salted = hashlib.pbkdf2_hmac(digest, password.encode(), salt, SCRAM_ITERATIONS)  # RFC 5802 Hi()
            upserts.append((name, code, SCRAM_ITERATIONS, salt, salted, {}))
        return request_struct_class([], upserts, {})


async def upsert_scram_users(settings: Settings, users: dict[str, str], mechanism: str = "SCRAM-SHA-512") -> None:
    """Create or update SCRAM users (KRaft keeps them in the metadata log) with the admin credential of
    ``settings``: principals added after the storage was formatted, or a changed password."""
    if not users:
        return
    admin = AIOKafkaAdminClient(**client_config(settings))
    await admin.start()
    try:
        response: Any = await admin._send_request(UpsertScramUsers(users, mechanism))  # private: no public API
    finally:
        await admin.close()
    for user, code, message, _ in response.results:
        if code != 0:
            raise RuntimeError(f"Kafka refused the SCRAM credential of {user}: error {code} {message or ''}".rstrip())


def sasl_configured(settings: Settings) -> bool:
    return settings.kafka_security_protocol.upper().startswith("SASL")


def main() -> None:
    if sys.argv[1:] not in (["create"], ["acls"]):
        print("usage: python -m shared.topics create|acls   (create: topics, and their ACLs when Kafka uses SASL)",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    settings = get_settings()
    if sys.argv[1] == "create":
        created = asyncio.run(create_topics(settings))
        print("created: " + (", ".join(created) if created else "nothing (all topics exist)"))
    if sys.argv[1] == "acls" or sasl_configured(settings):
        n = asyncio.run(create_acls(settings, acl_bindings(settings)))
        print(f"ACLs: {n} bindings in place for namespace {settings.topic_namespace}")


if __name__ == "__main__":
    main()
