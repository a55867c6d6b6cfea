"""deploy/k8s and deploy/compose.yaml, offline: the manifests parse, say what the project's registries
say (topics, ACLs, principals, databases, consumer groups, settings), the generated files are current,
and the built-in kinds are valid Kubernetes (the schemas shipped in the kubernetes-validate wheel).
deploy/k8s/validate.sh adds kustomize and kubeconform with the operators' CRD schemas."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from deploy import credentials, k8s_gen
from deploy.stack import SERVICES
from shared.projection import ProjectionRunner
from shared.settings import Settings
from shared.topics import ALL, AUDITOR, AclBinding, Op, Pattern, Resource, acl_bindings, topic_configs

pytestmark = pytest.mark.unit

K8S = Path(k8s_gen.__file__).parent / "k8s"
COMPOSE = Path(k8s_gen.__file__).parent / "compose.yaml"
K8S_VERSION = "1.33.0"  # as deploy/k8s/validate.sh
SETTINGS_ENV = {name.upper() for name in Settings.model_fields}
NOT_SETTINGS = {"PGPASSWORD"}  # libpq's name, read by asyncpg: the password stays out of DATABASE_URL
# The Kafka scaler's trigger metadata (KEDA 2.20.2, pkg/scalers/kafka_scaler.go): a free-form map in the CRD,
# so no schema catches a misspelt key.
KEDA_KAFKA_METADATA = {"bootstrapServers", "bootstrapServersFromEnv", "consumerGroup", "topic", "lagThreshold",
                       "activationLagThreshold", "offsetResetPolicy", "allowIdleConsumers", "sasl", "tls",
                       "excludePersistentLag", "scaleToZeroOnInvalidOffset", "limitToPartitionsWithLag"}  # fmt: skip


def documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            yield path, doc


def resources(kind: str) -> list[dict[str, Any]]:
    return [doc for path, doc in documents() if doc.get("kind") == kind and "base" in path.parts]


def one(kind: str, name: str) -> dict[str, Any]:
    [found] = [r for r in resources(kind) if r["metadata"]["name"] == name]
    return found


def test_every_manifest_parses_and_names_its_kind() -> None:
    seen = 0
    for path, doc in documents():
        if path.name == "kustomization.yaml":
            continue
        assert {"apiVersion", "kind", "metadata"} <= set(doc), path
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", doc["metadata"]["name"]), (path, doc["metadata"])
        seen += 1
    assert seen > 30


def test_the_generated_files_are_what_the_registries_give() -> None:
    for name, text in k8s_gen.render().items():
        assert (k8s_gen.GENERATED / name).read_text() == text, f"run python -m deploy.k8s_gen ({name} is stale)"
    listed = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())["resources"]
    assert {f"generated/{name}" for name in k8s_gen.render()} <= set(listed)


def test_every_topic_is_a_kafka_topic_with_the_registry_settings() -> None:
    by_name = {t["spec"]["topicName"]: t["spec"] for t in resources("KafkaTopic")}
    production = k8s_gen.PRODUCTION
    assert set(by_name) == {t.name(production) for t in ALL}
    for spec in by_name.values():
        assert spec["partitions"] == Settings.model_fields["topic_partitions"].default
        assert spec["replicas"] == 3
        assert spec["config"] == topic_configs(production)
        assert spec["config"] | {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete",
                                 "min.insync.replicas": "2"} == spec["config"]  # fmt: skip


def _bindings(user: dict[str, Any]) -> set[AclBinding]:
    """A KafkaUser's ACLs read back into the registry's form."""
    resource = {"topic": Resource.TOPIC, "group": Resource.GROUP, "cluster": Resource.CLUSTER}
    pattern = {"literal": Pattern.LITERAL, "prefix": Pattern.PREFIXED}
    op = {"Read": Op.READ, "Write": Op.WRITE, "Create": Op.CREATE, "Describe": Op.DESCRIBE,
          "DescribeConfigs": Op.DESCRIBE_CONFIGS}  # fmt: skip
    out = set()
    for acl in user["spec"].get("authorization", {}).get("acls", []):
        assert acl["host"] == "*"
        r = acl["resource"]
        out |= {AclBinding(user["metadata"]["name"], resource[r["type"]], r["name"], pattern[r["patternType"]], op[o])
                for o in acl["operations"]}  # fmt: skip
    return out


def test_every_principal_is_a_scram_kafka_user_with_exactly_the_registry_acls() -> None:
    users = {u["metadata"]["name"]: u for u in resources("KafkaUser")}
    assert set(users) == set(credentials.KAFKA_PRINCIPALS)
    assert all(u["spec"]["authentication"]["type"] == "scram-sha-512" for u in users.values())
    found = set().union(*(_bindings(u) for u in users.values()))
    assert found == set(acl_bindings(k8s_gen.PRODUCTION))
    assert not _bindings(users[credentials.ADMIN])  # a super user instead
    assert all(b.operation in (Op.READ, Op.DESCRIBE, Op.DESCRIBE_CONFIGS) for b in _bindings(users[AUDITOR]))


def test_the_kafka_cluster_is_kraft_3_plus_3_with_scram_and_acls() -> None:
    pools = {p["metadata"]["name"]: p["spec"] for p in resources("KafkaNodePool")}
    assert {tuple(p["roles"]): p["replicas"] for p in pools.values()} == {("controller",): 3, ("broker",): 3}
    kafka = one("Kafka", k8s_gen.KAFKA_CLUSTER)["spec"]["kafka"]
    assert kafka["config"]["default.replication.factor"] == 3 and kafka["config"]["min.insync.replicas"] == 2
    assert kafka["config"]["auto.create.topics.enable"] is False
    assert [(li["tls"], li["authentication"]["type"]) for li in kafka["listeners"]] == [(True, "scram-sha-512")]
    assert kafka["authorization"] == {"type": "simple", "superUsers": [credentials.ADMIN]}
    config = one("ConfigMap", k8s_gen.CONFIG_MAP)["data"]
    [listener] = kafka["listeners"]
    assert config["KAFKA_BOOTSTRAP_SERVERS"] == f"{k8s_gen.KAFKA_CLUSTER}-kafka-bootstrap:{listener['port']}"


def test_postgres_has_a_database_and_role_per_service_and_a_read_only_auditor() -> None:
    cluster = one("Cluster", k8s_gen.DB_CLUSTER)["spec"]
    assert cluster["instances"] == 3
    roles = {r["name"]: r for r in cluster["managed"]["roles"]}
    assert set(roles) == {*SERVICES, AUDITOR}
    assert roles[AUDITOR]["inRoles"] == ["pg_read_all_data"]
    assert not any(r.get("inRoles") or r.get("superuser") or r.get("createrole") for n, r in roles.items()
                   if n != AUDITOR)  # fmt: skip
    databases = {d["spec"]["name"]: d["spec"]["owner"] for d in resources("Database")}
    assert databases == {f"points_{s}": s for s in SERVICES}
    assert cluster["bootstrap"]["initdb"]["owner"] == AUDITOR  # points_audit: the auditor's scratch database


def test_every_environment_variable_is_a_setting_and_the_config_map_is_valid_settings() -> None:
    config = one("ConfigMap", k8s_gen.CONFIG_MAP)["data"]
    names = set(config)
    for deployment in resources("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            names |= {e["name"] for e in container.get("env", [])}
            assert container["envFrom"] == [{"configMapRef": {"name": k8s_gen.CONFIG_MAP}}]
    assert names - NOT_SETTINGS <= SETTINGS_ENV, names - NOT_SETTINGS - SETTINGS_ENV
    settings = Settings(**{k.lower(): v for k, v in config.items()})
    assert settings.deployment == k8s_gen.DEPLOYMENT and settings.topic_namespace == k8s_gen.PRODUCTION.topic_namespace
    assert (settings.topic_partitions, settings.topic_replication_factor, settings.topic_min_insync_replicas) == (
        k8s_gen.PRODUCTION.topic_partitions, 3, 2)


def test_services_probe_the_real_endpoints_and_scale_on_the_groups_the_runner_joins() -> None:
    from services.ranking.app import build

    paths = {getattr(r, "path", None) for r in build().routes}
    config = one("ConfigMap", k8s_gen.CONFIG_MAP)["data"]
    settings = Settings(**{k.lower(): v for k, v in config.items()})
    for service in SERVICES:
        container = one("Deployment", service)["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert env["SERVICE_NAME"]["value"] == service and env["KAFKA_SASL_USERNAME"]["value"] == service
        assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == service  # its KafkaUser's secret
        assert env["DATABASE_URL"]["value"].endswith(f"/points_{service}")
        probes = {container[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe", "startupProbe")}
        assert probes == {"/healthz", "/readyz"} <= paths
        app = __import__(f"services.{service}.app", fromlist=["READ_MODELS"])
        groups = {ProjectionRunner(None, cls(), settings).group_id for cls in getattr(app, "READ_MODELS", ())}  # type: ignore[arg-type]
        scaled = [s for s in resources("ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == service]
        assert {t["metadata"]["consumerGroup"] for s in scaled for t in s["spec"]["triggers"]} == groups
        for trigger in (t for s in scaled for t in s["spec"]["triggers"]):
            assert set(trigger["metadata"]) <= KEDA_KAFKA_METADATA
        assert len(scaled) == (1 if groups else 0)
        assert [p for p in resources("PodDisruptionBudget") if p["metadata"]["name"] == service]


def test_postgres_admits_only_the_pods_labelled_as_its_clients() -> None:
    [policy] = resources("NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == {"cnpg.io/cluster": k8s_gen.DB_CLUSTER}
    [clients] = [rule for rule in policy["spec"]["ingress"] if rule["ports"] == [{"port": 5432, "protocol": "TCP"}]]
    selector = clients["from"][0]["podSelector"]["matchLabels"]
    assert selector == k8s_gen.DB_CLIENT
    for deployment in resources("Deployment"):
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_built_in_kinds_are_valid_kubernetes() -> None:
    checked = 0
    for path, doc in documents():
        group = doc["apiVersion"].rpartition("/")[0]
        if path.name == "kustomization.yaml" or ("." in group and not group.endswith(".k8s.io")):
            continue  # custom resources: validate.sh checks them against the operators' CRDs
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        checked += 1
    assert checked >= 14  # ConfigMap, NetworkPolicy, Namespace, 4 × (Deployment, Service, PodDisruptionBudget)


def test_a_misspelt_field_fails_validation() -> None:
    deployment = one("Deployment", "declarations")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readynessProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_the_compose_file_needs_exactly_the_variables_the_credentials_tool_writes() -> None:
    text = COMPOSE.read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert not set(re.findall(r"\$\{([A-Z0-9_]+)(?!:\?)[}:-]", text)) - required  # no silent defaults
    written = {line.split("=", 1)[0] for line in credentials.compose_env(credentials.generate()).splitlines()}
    assert required == written
    compose = yaml.safe_load(text)
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        assert set(env) - {"POSTGRES_USER", "POSTGRES_PASSWORD", "CLUSTER_ID", "NODE_ID"} - {
            k for k in env if k.startswith("KAFKA_") and k.endswith("_PASSWORD") and name.startswith("kafka")
        } <= SETTINGS_ENV, name
