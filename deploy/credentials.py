"""The installation's secrets: one Kafka password per principal and the token secret.

``load_or_create(path)`` writes them once (JSON, mode 600) and returns the same values on every
later call; ``make up`` keeps them in ``.stack/secrets.json``, each test stack in its own temporary
folder. A service gets only its own credential, through the environment (``Secrets.env``).

Kafka principals (SCRAM users, see ``shared.topics.acl_bindings`` for what each may do):
``admin`` (super user: creates topics and ACLs), ``auditor`` (reads every topic, writes none),
one per service (writes its own topic and the dead-letter topic, reads what it consumes),
``controller`` (the KRaft controller listener, PLAIN, super user; never handed to a client), and
one per community site, ``site-<name>``, added when the site joins (``add_principals``, docs/sites.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.topics import BY_SERVICE

ADMIN = "admin"
AUDITOR = "auditor"
CONTROLLER = "controller"
SERVICE_PRINCIPALS = tuple(BY_SERVICE)
KAFKA_PRINCIPALS = (ADMIN, AUDITOR, *SERVICE_PRINCIPALS)  # SCRAM users
SCRAM_MECHANISM = "SCRAM-SHA-512"
SECURITY_PROTOCOL = "SASL_PLAINTEXT"  # loopback only; SASL_SSL when the broker leaves the machine
SECRETS_FILE_ENV = "POINTS_SECRETS_FILE"  # where a test session's secrets are (KafkaServer's default users)


class SecretsError(RuntimeError):
    pass


@dataclass(frozen=True)
class Secrets:
    kafka: Mapping[str, str]  # principal -> password (KAFKA_PRINCIPALS and CONTROLLER)
    token_secret: str
    path: Path | None = None

    def password(self, principal: str) -> str:
        try:
            return self.kafka[principal]
        except KeyError:
            raise SecretsError(f"no Kafka credential for principal {principal!r} in {self.path}") from None

    def kafka_settings(self, principal: str) -> dict[str, Any]:
        """``Settings`` field values that make a client authenticate as ``principal``."""
        return {
            "kafka_security_protocol": SECURITY_PROTOCOL,
            "kafka_sasl_mechanism": SCRAM_MECHANISM,
            "kafka_sasl_username": principal,
            "kafka_sasl_password": self.password(principal),
        }

    def env(self, principal: str, *, token: bool = True) -> dict[str, str]:
        """Environment variables for a process acting as ``principal`` (its credential only)."""
        env = {k.upper(): str(v) for k, v in self.kafka_settings(principal).items()}
        if token:
            env["TOKEN_SECRET"] = self.token_secret
        return env

    def settings_for(self, settings: Any, principal: str) -> Any:
        """A copy of a ``Settings`` that authenticates to Kafka as ``principal``."""
        return settings.model_copy(update=self.kafka_settings(principal))

    @property
    def scram_users(self) -> dict[str, str]:
        """Every SCRAM user: the fixed principals and any added later (community sites' ``site-<name>``)."""
        return {p: v for p, v in self.kafka.items() if p != CONTROLLER}


def generate() -> Secrets:
    return Secrets(kafka={p: secrets.token_urlsafe(24) for p in (*KAFKA_PRINCIPALS, CONTROLLER)},
                   token_secret=secrets.token_urlsafe(48))  # fmt: skip


def _parse(data: dict[str, Any], path: Path) -> Secrets:
    kafka = data.get("kafka")
    token = data.get("token_secret")
    if not isinstance(kafka, dict) or not isinstance(token, str) or len(token) < 32:
        raise SecretsError(f"{path} is not a secrets file written by deploy.secrets (delete it with `make wipe`)")
    missing = [p for p in (*KAFKA_PRINCIPALS, CONTROLLER) if not kafka.get(p)]
    if missing:
        raise SecretsError(f"{path} has no password for {', '.join(missing)} (delete it with `make wipe`)")
    return Secrets(kafka=dict(kafka), token_secret=token, path=path)


def load(path: Path) -> Secrets:
    path = Path(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecretsError(f"{path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")
    return _parse(json.loads(path.read_text()), path)


def load_or_create(path: Path) -> Secrets:
    """The secrets in ``path``; generated (mode 600, exclusive create) when the file does not exist."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fresh = generate()
        body = json.dumps({"kafka": dict(fresh.kafka), "token_secret": fresh.token_secret}, indent=2) + "\n"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race: use its secrets
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
    return load(path)


def add_principals(path: Path, principals: Iterable[str]) -> Secrets:
    """The secrets of ``path`` with a fresh password for each of ``principals`` it lacks (e.g. a community
    site's ``site-<name>``), written back owner-only (a new file, then renamed over the old one)."""
    current = load(path)
    missing = [p for p in principals if p not in current.kafka]
    if not missing:
        return current
    kafka = dict(current.kafka) | {p: secrets.token_urlsafe(24) for p in missing}
    body = json.dumps({"kafka": kafka, "token_secret": current.token_secret}, indent=2) + "\n"
    tmp = Path(f"{path}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return load(path)


def from_env() -> Secrets | None:
    """The secrets a test session published in ``POINTS_SECRETS_FILE``, if any."""
    name = os.environ.get(SECRETS_FILE_ENV)
    if not name:
        return None
    with contextlib.suppress(FileNotFoundError):
        return load(Path(name))
    return None


def compose_env(secrets_: Secrets) -> str:
    """An ``--env-file`` for deploy/compose.yaml with these secrets (plus a Postgres password and a
    cluster id, drawn fresh)."""
    import base64
    import uuid

    lines = [f"KAFKA_{p.upper()}_PASSWORD={v}" for p, v in secrets_.kafka.items()]
    lines += [f"TOKEN_SECRET={secrets_.token_secret}", f"POSTGRES_PASSWORD={secrets.token_urlsafe(24)}",
              "KAFKA_CLUSTER_ID=" + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")]
    return "\n".join(lines) + "\n"


def main() -> None:
    import sys

    args = sys.argv[1:]
    if len(args) != 2 or args[0] != "compose-env":
        print("usage: python -m deploy.credentials compose-env <file>   (an env file for deploy/compose.yaml, "
              "mode 600, from .stack/secrets.json; kept when it exists)", file=sys.stderr)
        raise SystemExit(2)
    target = Path(args[1])
    if target.exists():
        print(f"{target} exists: kept")
        return
    from deploy.local import REPO_ROOT

    body = compose_env(load_or_create(REPO_ROOT / ".stack" / "secrets.json"))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body)
    print(f"wrote {target} (mode 600)")


if __name__ == "__main__":
    main()
