"""The simulated county: a topic namespace of its own on the stack's Kafka, the county's services
(review, ranking, exchange) and one community site per community, each a process of its own.

Sites are processes, not tasks in the simulator: each is the declarations service exactly as a site
machine runs it (``SITE=<name>``, its own database, its own Kafka principal, its own relay and read
models), so what is measured is the real path, and the sites use both cores as the county's services
do. Everything authenticates to Kafka as itself; the simulator holds the admin credential only to
create the namespace's topics, principals and ACLs, and reads the databases only to measure.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from deploy import sites as site_setup
from deploy.credentials import Secrets
from deploy.local import REPO_ROOT, free_ports, settings_env, stop_process, tail
from deploy.local import create_database as make_database
from deploy.testing import StackHandle
from shared.settings import Settings
from shared.sites import Site
from shared.topics import acl_bindings, create_acls, create_topics, sasl_configured

COUNTY_SERVICES = ("review", "ranking", "exchange")


@dataclass
class Proc:
    name: str
    url: str
    dsn: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class County:
    settings: Settings  # the simulator's own: admin credential, the namespace, the registry of sites
    sites: list[Site]
    services: dict[str, Proc] = field(default_factory=dict)
    site_procs: dict[str, Proc] = field(default_factory=dict)  # by site name

    def all(self) -> list[Proc]:
        return [*self.services.values(), *self.site_procs.values()]


async def start(handle: StackHandle, sites: list[Site], logs: Path, partitions: int = 12,
                patience_s: float = 180) -> County:
    """Namespace, topics, principals and ACLs; then every service and site, started together."""
    namespace = f"sim{uuid.uuid4().hex[:8]}"
    base = Settings(kafka_bootstrap_servers=handle.bootstrap, database_url=handle.dsn, topic_namespace=namespace,
                    topic_partitions=partitions, deployment="county")
    settings = site_setup.with_sites(base, sites)
    await create_topics(settings)
    secrets = await site_setup.admit(settings, sites, None if handle.secrets is None else handle.secrets.path)
    if sasl_configured(settings):
        await create_acls(settings, acl_bindings(settings, sites=()))
    county = County(settings, sites)
    ports = iter(free_ports(len(COUNTY_SERVICES) + len(sites)))
    for service in COUNTY_SERVICES:
        dsn = make_database(handle.dsn, f"{namespace}_{service}")
        own = settings.model_copy(update={"service_name": service, "database_url": dsn})
        county.services[service] = launch(service, f"services.{service}", _as(own, service, secrets), logs,
                                          next(ports))
    for site in sites:
        dsn = make_database(handle.dsn, f"{namespace}_site_{site.name}")
        own = site_setup.site_settings(settings, site, dsn, secrets)
        county.site_procs[site.name] = launch(f"site-{site.name}", "services.declarations", own, logs, next(ports))
    try:
        await asyncio.gather(*(ready(p, patience_s) for p in county.all()))
    except BaseException:
        stop(county)
        raise
    return county


def _as(settings: Settings, principal: str, secrets: Secrets | None) -> Settings:
    return settings if secrets is None else secrets.settings_for(settings, principal)  # type: ignore[no-any-return]


def launch(name: str, module: str, own: Settings, logs: Path, port: int) -> Proc:
    env = settings_env(own.model_copy(update={"http_port": port}))
    env.pop("POINTS_SECRETS_FILE", None)  # its own credential only
    env["PYTHONPATH"] = str(REPO_ROOT)
    log = logs / f"{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", module], cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Proc(name, f"http://127.0.0.1:{port}", own.database_url, proc, log)


async def ready(proc: Proc, patience_s: float) -> None:
    deadline = time.monotonic() + patience_s
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            if proc.process.poll() is not None:
                raise RuntimeError(f"{proc.name} exited during start-up:\n{tail(proc.log)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{proc.url}/readyz")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} not ready after {patience_s:.0f} s:\n{tail(proc.log)}")
            await asyncio.sleep(0.5)


def stop(county: County) -> None:
    for proc in county.all():
        stop_process(proc.process, timeout=20)
