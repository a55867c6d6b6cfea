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
    settings: Settings
    process: subprocess.Popen[bytes]

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


@contextlib.contextmanager
def running_service(name: str, settings: Settings, timeout: float = 60) -> Iterator[RunningService]:
    port = free_port()
    # The service authenticates to Kafka as itself (its ACLs on this namespace are created first), as in `make up`.
    s = as_service(settings, name).model_copy(update={"service_name": name, "http_port": port})
    # The log goes to a file, not a pipe: a pipe nobody reads fills up (e.g. while Kafka is away) and hangs the service.
    log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=settings_env(s),
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"service {name}", url, proc, Path(log.name), timeout)
        yield RunningService(name, url, s, proc)
    finally:
        stop_process(proc)
        log.close()
        os.unlink(log.name)


def token(sub: str, role: Role, community: str, *subjects: str, settings: Settings | None = None) -> str:
    return issue_token(Principal(sub=sub, role=role, community=community, subject_ids=subjects))
