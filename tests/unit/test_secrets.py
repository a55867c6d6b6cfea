"""Secrets: a service refuses a missing or well-known secret unless ALLOW_DEV_SECRETS says so; the
installation's secrets are generated once, owner-only, and each principal gets only its own."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deploy import credentials
from deploy.local import REPO_ROOT
from shared.settings import DEV_TOKEN_SECRET, InsecureSecrets, Settings, check_secrets, secret_problems
from shared.topics import DEAD_LETTER, AclBinding, Op, Pattern, Resource, acl_bindings

pytestmark = pytest.mark.unit

GOOD_TOKEN = "x" * 48
SASL: dict[str, Any] = {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "declarations"}  # fmt: skip


@pytest.fixture(autouse=True)
def no_dev_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k == "ALLOW_DEV_SECRETS" or k.startswith("KAFKA_")]:
        monkeypatch.delenv(name)  # e.g. the test stack's admin credential


def test_given_the_public_token_secret_when_checked_then_refused_with_one_line() -> None:
    s = Settings(token_secret=DEV_TOKEN_SECRET)
    with pytest.raises(InsecureSecrets) as err:
        check_secrets(s)
    message = str(err.value)
    assert "\n" not in message and "TOKEN_SECRET" in message and "ALLOW_DEV_SECRETS=1" in message


def test_given_sasl_without_a_password_when_checked_then_refused() -> None:
    for password in (None, ""):
        s = Settings(token_secret=GOOD_TOKEN, **SASL, kafka_sasl_password=password)
        with pytest.raises(InsecureSecrets, match="KAFKA_SASL_PASSWORD is missing"):
            check_secrets(s)
    with pytest.raises(InsecureSecrets, match="well-known"):
        check_secrets(Settings(token_secret=GOOD_TOKEN, **SASL, kafka_sasl_password="changeme"))


def test_given_the_dev_flag_then_the_same_settings_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOW_DEV_SECRETS", "1")
    s = Settings(token_secret=DEV_TOKEN_SECRET, **SASL)
    assert s.allow_dev_secrets and len(secret_problems(s)) == 2
    check_secrets(s)  # no exception


def test_given_real_secrets_then_accepted() -> None:
    check_secrets(Settings(token_secret=GOOD_TOKEN, **SASL, kafka_sasl_password="p" * 32))
    check_secrets(Settings(token_secret=GOOD_TOKEN))  # no SASL configured: no Kafka password needed


def test_a_service_process_with_the_public_secret_exits_with_one_line() -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ALLOW_DEV_SECRETS",) and not k.startswith("KAFKA_")} | {
        "TOKEN_SECRET": DEV_TOKEN_SECRET, "PYTHONPATH": str(REPO_ROOT), "SERVICE_NAME": "ranking",
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}  # fmt: skip
    res = subprocess.run([sys.executable, "-m", "services.ranking"], env=env, capture_output=True, text=True,
                         timeout=120, cwd=REPO_ROOT)  # fmt: skip
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "refuses to start" in lines[0] and "TOKEN_SECRET" in lines[0], res.stderr


def test_secrets_are_generated_once_owner_only_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "stack" / "secrets.json"
    first = credentials.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = credentials.load_or_create(path)
    assert again.kafka == first.kafka and again.token_secret == first.token_secret
    assert len(set(first.kafka.values())) == len(first.kafka)  # every principal its own password
    env = first.env("review")
    assert env["KAFKA_SASL_USERNAME"] == "review" and env["KAFKA_SASL_PASSWORD"] == first.kafka["review"]
    assert not set(first.kafka.values()) - {first.kafka["review"]} & set(env.values())  # nobody else's
    path.chmod(0o644)
    with pytest.raises(credentials.SecretsError, match="readable by others"):
        credentials.load(path)


def test_each_service_writes_only_its_own_topic_and_the_dead_letters() -> None:
    s = Settings(topic_namespace="ns", token_secret=GOOD_TOKEN)
    bindings = acl_bindings(s)
    writes = {(b.principal, b.name) for b in bindings if b.operation is Op.WRITE}
    assert writes == {(svc, f"ns.{svc}") for svc in ("declarations", "review", "ranking", "exchange")} | {
        (svc, DEAD_LETTER.name(s)) for svc in ("declarations", "review", "ranking", "exchange")}
    reads = {(b.principal, b.name) for b in bindings if b.operation is Op.READ and b.resource is Resource.TOPIC}
    assert ("review", "ns.declarations") in reads and ("declarations", "ns.review") in reads
    assert ("declarations", "ns.ranking") not in reads
    assert AclBinding("auditor", Resource.TOPIC, "ns.", Pattern.PREFIXED, Op.READ) in bindings
    assert not [b for b in bindings if b.principal == "auditor" and b.operation is Op.WRITE]
