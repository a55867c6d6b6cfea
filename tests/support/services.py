"""Start a service as a real process (uvicorn, relay and projections inside) for e2e tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from deploy.local import free_port, settings_env, stop_process, wait_until_ready
from shared.auth import Principal, Role, issue_token
from shared.settings import Settings
from tests.support.settings import as_service


@dataclass
class RunningService:
    name: str
    url: str
    settings: Settings  # the test's settings (Kafka as admin) with the service's name and port
    process: subprocess.Popen[bytes]
    service_settings: Settings | None = None  # what the process got: Kafka as the service's own principal
    log: Path | None = None  # its stderr (structlog), removed when it stops

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


@contextlib.contextmanager
def running_service(name: str, settings: Settings, timeout: float = 60) -> Iterator[RunningService]:
    port = free_port()
    s = settings.model_copy(update={"service_name": name, "http_port": port})
    # The service authenticates to Kafka as itself (its ACLs on this namespace are created first), as in
    # `make up`; the test keeps its admin settings (e.g. to stand in for another service on its topic).
    with _running(name, s, as_service(s, name), timeout) as svc:
        yield svc


@contextlib.contextmanager
def running_site(site_settings: Settings, env: dict[str, str] | None = None,
                 timeout: float = 60) -> Iterator[RunningService]:
    """A community site's declarations service as a process (``deploy.sites.site_settings``: the site's
    database and credential); ``env``: more environment (e.g. RUN_RELAY=false, DECLARATIONS_NOW)."""
    s = site_settings.model_copy(update={"http_port": free_port()})
    with _running("declarations", s, s, timeout, **(env or {})) as svc:
        yield svc


@contextlib.contextmanager
def running_relay(process_settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m shared.relay declarations`` as a process of its own (a site's relay, to cut its link)."""
    env = settings_env(process_settings)
    env.pop("POINTS_SECRETS_FILE", None)
    proc = subprocess.Popen([sys.executable, "-m", "shared.relay", "declarations"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        stop_process(proc)


@contextlib.contextmanager
def _running(name: str, s: Settings, own: Settings, timeout: float, **extra: str) -> Iterator[RunningService]:
    env = settings_env(own, **extra)
    env.pop("POINTS_SECRETS_FILE", None)  # its own credential only
    # The log goes to a file, not a pipe: a pipe nobody reads fills up (e.g. while Kafka is away) and hangs the service.
    log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{s.http_port}"
    try:
        wait_until_ready(f"service {name}", url, proc, Path(log.name), timeout)
        yield RunningService(name, url, s, proc, own, Path(log.name))
    finally:
        stop_process(proc)
        log.close()
        os.unlink(log.name)


def token(sub: str, role: Role, community: str, *subjects: str, settings: Settings | None = None) -> str:
    return issue_token(Principal(sub=sub, role=role, community=community, subject_ids=subjects))
