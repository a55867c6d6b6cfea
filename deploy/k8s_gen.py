"""Kubernetes resources generated from the project's own registries: ``python -m deploy.k8s_gen [--check]``.

Writes ``deploy/k8s/base/generated/`` (``--check``: exit 1 when the files there differ from what the
registries give, and write nothing). What comes from where:

- ``kafka-topics.yaml``: a Strimzi ``KafkaTopic`` per topic of ``shared.topics.ALL`` with
  ``shared.topics.topic_configs`` and the default partition count of ``shared.settings``;
- ``kafka-users.yaml``: a Strimzi ``KafkaUser`` (SCRAM-SHA-512) per principal of
  ``deploy.credentials.KAFKA_PRINCIPALS`` with exactly the ACLs of ``shared.topics.acl_bindings``;
- ``postgres.yaml``: the CloudNativePG ``Cluster`` with a login role per service and the auditor
  (read-only: ``pg_read_all_data``), and a ``Database`` per service owned by its role;
- ``services.yaml``: per service a ``Deployment``, ``Service``, ``PodDisruptionBudget`` and, when the
  service runs projections (its ``READ_MODELS``), a KEDA ``ScaledObject`` on the lag of their consumer
  groups (named as ``shared.projection.ProjectionRunner`` names them) with its ``TriggerAuthentication``.

Hand-written beside them (``deploy/k8s/base``): the Kafka cluster and node pools, the ConfigMap, the
NetworkPolicies. Versions: Strimzi 1.2.0 (kafka.strimzi.io/v1), CloudNativePG 1.30.0, KEDA 2.20.2.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from deploy.credentials import ADMIN, KAFKA_PRINCIPALS, SCRAM_MECHANISM
from deploy.stack import SERVICES
from shared.settings import Settings
from shared.sites import Site, parse_registry
from shared.topics import ALL, AUDITOR, AclBinding, Pattern, Resource, acl_bindings, topic_configs

BASE = Path(__file__).resolve().parent / "k8s" / "base"
GENERATED = BASE / "generated"

KAFKA_CLUSTER = "points"  # Strimzi Kafka resource: bootstrap service points-kafka-bootstrap, CA points-cluster-ca-cert
DB_CLUSTER = "points-db"  # CloudNativePG Cluster: read-write service points-db-rw
CONFIG_MAP = "points-config"
TOKEN_SECRET = "points-token"  # key token-secret; made by the operator of the installation (docs/deploy.md)
IMAGE = "points"  # the overlay names the real image and tag
HTTP_PORT = 8000
CA_DIR = "/etc/points/kafka-ca"
# The installation's settings that name things in Kafka (ConfigMap points-config says the same; a test checks).
DEPLOYMENT = "county"
PRODUCTION = Settings(
    topic_namespace=Settings.model_fields["topic_namespace"].default,
    deployment=DEPLOYMENT,
    topic_partitions=Settings.model_fields["topic_partitions"].default,
    topic_replication_factor=3,
    topic_min_insync_replicas=2,
)
LAG_THRESHOLD = 5000  # records behind per instance before KEDA adds one (the relay sends 2000 a batch)
MIN_REPLICAS = 2  # one instance may be drained or restarted while the other keeps the partitions
PART_OF = {"app.kubernetes.io/part-of": "points"}
DB_CLIENT = {"points.hezhang.gov.cn/database-client": "true"}  # NetworkPolicy: who may reach PostgreSQL
KAFKA_CLIENT = {"points.hezhang.gov.cn/kafka-client": "true"}  # Strimzi listener: who may reach Kafka

_ACL_RESOURCE = {Resource.TOPIC: "topic", Resource.GROUP: "group", Resource.CLUSTER: "cluster"}
_ACL_PATTERN = {Pattern.LITERAL: "literal", Pattern.PREFIXED: "prefix"}
_ACL_OPERATION = {"READ": "Read", "WRITE": "Write", "CREATE": "Create", "DESCRIBE": "Describe",
                  "DESCRIBE_CONFIGS": "DescribeConfigs"}  # fmt: skip


def _meta(name: str, **labels: str) -> dict[str, Any]:
    return {"name": name, "labels": {**PART_OF, **labels}}


def kafka_topics(settings: Settings = PRODUCTION) -> list[dict[str, Any]]:
    return [{
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": _meta(t.name(settings).replace(".", "-"), **{"strimzi.io/cluster": KAFKA_CLUSTER}),
        "spec": {
            "topicName": t.name(settings),
            "partitions": settings.topic_partitions,
            "replicas": settings.topic_replication_factor,
            "config": topic_configs(settings),
        },
    } for t in ALL]  # fmt: skip


def _acls(bindings: Iterable[AclBinding]) -> list[dict[str, Any]]:
    """Strimzi's form: one rule per resource, its operations in the registry's order."""
    rules: dict[tuple[Resource, str, Pattern], list[str]] = {}
    for b in bindings:
        rules.setdefault((b.resource, b.name, b.pattern), []).append(_ACL_OPERATION[b.operation.name])
    return [{"resource": {"type": _ACL_RESOURCE[r], "name": name, "patternType": _ACL_PATTERN[p]},
             "operations": ops, "host": "*"} for (r, name, p), ops in rules.items()]  # fmt: skip


def kafka_users(settings: Settings = PRODUCTION) -> list[dict[str, Any]]:
    bindings = acl_bindings(settings)
    out = []
    for principal in KAFKA_PRINCIPALS:
        spec: dict[str, Any] = {"authentication": {"type": SCRAM_MECHANISM.lower()}}
        if principal != ADMIN:  # admin: a super user of the Kafka resource, no ACLs of its own
            spec["authorization"] = {"type": "simple",
                                     "acls": _acls(b for b in bindings if b.principal == principal)}
        out.append({"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaUser",
                    "metadata": _meta(principal, **{"strimzi.io/cluster": KAFKA_CLUSTER}), "spec": spec})
    return out


def database(service: str) -> str:
    return f"points_{service}"  # as the local stack names them (deploy/stack.py)


def postgres() -> list[dict[str, Any]]:
    roles = [{"name": s, "login": True, "passwordSecret": {"name": f"{DB_CLUSTER}-{s}"}} for s in SERVICES]
    roles.append({"name": AUDITOR, "login": True, "inRoles": ["pg_read_all_data"],
                  "passwordSecret": {"name": f"{DB_CLUSTER}-{AUDITOR}"}})
    cluster = {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": _meta(DB_CLUSTER),
        "spec": {
            "instances": 3,
            "imageName": "ghcr.io/cloudnative-pg/postgresql:18.4-system-trixie",  # CloudNativePG 1.30.0's default
            "postgresql": {"parameters": {"max_connections": "300"}},
            # The auditor's own database (points-audit replays into scratch schemas there) is the bootstrap one.
            "bootstrap": {"initdb": {"database": "points_audit", "owner": AUDITOR,
                                     "secret": {"name": f"{DB_CLUSTER}-{AUDITOR}"}}},
            "managed": {"roles": roles},
            "storage": {"size": "20Gi"},
            "inheritedMetadata": {"labels": PART_OF},
        },
    }
    databases = [{
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Database",
        "metadata": _meta(f"{DB_CLUSTER}-{s}"),
        "spec": {"cluster": {"name": DB_CLUSTER}, "name": database(s), "owner": s, "databaseReclaimPolicy": "retain"},
    } for s in SERVICES]  # fmt: skip
    return [cluster, *databases]


def group_id(projection: str, settings: Settings = PRODUCTION) -> str:
    return f"{settings.topic_namespace}.{settings.deployment}.projection.{projection}"


def projections(service: str) -> list[str]:
    """Names of the projections a service runs (its composition root's ``READ_MODELS``)."""
    app = importlib.import_module(f"services.{service}.app")
    return [cls.name for cls in getattr(app, "READ_MODELS", ())]


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def deployment(service: str, scaled: bool) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": service, **PART_OF}
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 3}
    container = {
        "name": service,
        "image": IMAGE,
        "command": ["python", "-m", f"services.{service}"],
        "ports": [{"name": "http", "containerPort": HTTP_PORT}],
        "envFrom": [{"configMapRef": {"name": CONFIG_MAP}}],
        "env": [
            {"name": "SERVICE_NAME", "value": service},
            {"name": "DATABASE_URL", "value": f"postgresql://{service}@{DB_CLUSTER}-rw:5432/{database(service)}"},
            _secret_env("PGPASSWORD", f"{DB_CLUSTER}-{service}", "password"),  # asyncpg reads it (libpq's name)
            {"name": "KAFKA_SASL_USERNAME", "value": service},
            _secret_env("KAFKA_SASL_PASSWORD", service, "password"),  # Strimzi's User Operator writes it
            _secret_env("TOKEN_SECRET", TOKEN_SECRET, "token-secret"),
        ],
        "startupProbe": probe | {"failureThreshold": 30, "periodSeconds": 2},  # migrations run one at a time
        "livenessProbe": probe | {"failureThreshold": 3},
        "readinessProbe": probe | {"httpGet": {"path": "/readyz", "port": "http"}, "failureThreshold": 2},
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "kafka-ca", "mountPath": CA_DIR, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }  # fmt: skip
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app.kubernetes.io/name": service}},
        "template": {
            "metadata": {"labels": labels | DB_CLIENT | KAFKA_CLIENT},
            "spec": {
                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "terminationGracePeriodSeconds": 30,
                "containers": [container],
                "volumes": [{"name": "kafka-ca", "secret": {"secretName": f"{KAFKA_CLUSTER}-cluster-ca-cert",
                                                            "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                            {"name": "tmp", "emptyDir": {}}],
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                               "whenUnsatisfiable": "ScheduleAnyway",
                                               "labelSelector": {"matchLabels": {"app.kubernetes.io/name": service}}}],
            },
        },
    }  # fmt: skip
    if not scaled:  # KEDA owns the replica count of a scaled service
        spec = {"replicas": MIN_REPLICAS, **spec}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(service, **{
        "app.kubernetes.io/name": service}), "spec": spec}


def service_resources(service: str) -> list[dict[str, Any]]:
    names = projections(service)
    selector = {"app.kubernetes.io/name": service}
    out = [
        deployment(service, scaled=bool(names)),
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(service, **selector),
         "spec": {"selector": selector, "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http"}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(service, **selector),
         "spec": {"minAvailable": 1, "selector": {"matchLabels": selector}}},
    ]  # fmt: skip
    if names:
        out.append({
            "apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication", "metadata": _meta(f"{service}-kafka"),
            "spec": {
                "env": [{"parameter": "username", "name": "KAFKA_SASL_USERNAME", "containerName": service}],
                "secretTargetRef": [
                    {"parameter": "password", "name": service, "key": "password"},
                    {"parameter": "ca", "name": f"{KAFKA_CLUSTER}-cluster-ca-cert", "key": "ca.crt"},
                ],
            },
        })  # fmt: skip
        out.append({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": _meta(service, **selector),
            "spec": {
                "scaleTargetRef": {"name": service},
                "minReplicaCount": MIN_REPLICAS,
                "maxReplicaCount": PRODUCTION.topic_partitions,  # more would sit idle in the group
                "triggers": [{
                    "type": "kafka",
                    "metadata": {
                        "bootstrapServersFromEnv": "KAFKA_BOOTSTRAP_SERVERS",
                        "consumerGroup": group_id(name),
                        "lagThreshold": str(LAG_THRESHOLD),
                        "offsetResetPolicy": "earliest",  # a group with no offsets yet has the whole log to read
                        "sasl": "scram_sha512",
                        "tls": "enable",
                    },
                    "authenticationRef": {"name": f"{service}-kafka"},
                } for name in names],
            },
        })  # fmt: skip
    return out


def site_user(site: Site, settings: Settings = PRODUCTION) -> dict[str, Any]:
    """The KafkaUser of a community site (for the county's overlay, next to its entry in SITES)."""
    bindings = acl_bindings(settings, services=(), auditor=None, sites=(site,))
    return {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaUser",
            "metadata": _meta(site.principal, **{"strimzi.io/cluster": KAFKA_CLUSTER,
                                                 "points.hezhang.gov.cn/community": site.community_id}),
            "spec": {"authentication": {"type": SCRAM_MECHANISM.lower()},
                     "authorization": {"type": "simple", "acls": _acls(bindings)}}}


def render() -> dict[str, str]:
    """File name (under generated/) -> YAML text."""
    header = "# Generated by `python -m deploy.k8s_gen` from the project's registries: do not edit.\n"
    docs = {
        "kafka-topics.yaml": kafka_topics(),
        "kafka-users.yaml": kafka_users(),
        "postgres.yaml": postgres(),
        "services.yaml": [r for s in SERVICES for r in service_resources(s)],
    }
    return {name: header + yaml.safe_dump_all(items, sort_keys=False, width=120) for name, items in docs.items()}


def main() -> None:
    check = sys.argv[1:] == ["--check"]
    if len(sys.argv) == 4 and sys.argv[1] == "site-user":
        site = parse_registry(f"{sys.argv[2]}={sys.argv[3]}")[0]
        print(yaml.safe_dump(site_user(site), sort_keys=False, width=120), end="")
        return
    if sys.argv[1:] not in ([], ["--check"]):
        print("usage: python -m deploy.k8s_gen [--check]   |   python -m deploy.k8s_gen site-user <name> <community>",
              file=sys.stderr)
        raise SystemExit(2)
    stale = []
    for name, text in render().items():
        path = GENERATED / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if check and stale:
        print(f"deploy/k8s/base/generated is stale ({', '.join(stale)}): run python -m deploy.k8s_gen", file=sys.stderr)
        raise SystemExit(1)
    print("wrote: " + ", ".join(stale) if stale else "deploy/k8s/base/generated is up to date")


if __name__ == "__main__":
    main()
