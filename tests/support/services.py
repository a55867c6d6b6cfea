"""Start a service as a real process (uvicorn, relay and projections inside) for e2e tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from deploy.local import free_port
from shared.auth import Principal, Role, issue_token
from shared.settings import Settings


@dataclass
class RunningService:
    name: str
    url: str
    settings: Settings
    process: subprocess.Popen[bytes]

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    values = {k.upper(): str(v) for k, v in settings.model_dump().items() if v is not None}
    return os.environ | values | extra


@contextlib.contextmanager
def running_service(name: str, settings: Settings, timeout: float = 60) -> Iterator[RunningService]:
    port = free_port()
    s = settings.model_copy(update={"service_name": name, "http_port": port})
    # The log goes to a file, not a pipe: a pipe nobody reads fills up (e.g. while Kafka is away) and hangs the service.
    log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=env_for(s),
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"service {name} exited: {Path(log.name).read_text(errors='replace')[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"service {name} not ready after {timeout}s: "
                                   f"{Path(log.name).read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield RunningService(name, url, s, proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        os.unlink(log.name)


def token(sub: str, role: Role, community: str, *subjects: str, settings: Settings | None = None) -> str:
    return issue_token(Principal(sub=sub, role=role, community=community, subject_ids=subjects))
