"""Local stack without Docker: ``python -m deploy.stack up|down|wipe|status``.

Kafka (KRaft, one node) and PostgreSQL run from ``.stack/`` at the repository root; the four services
run as detached ``python -m services.<name>`` processes. ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL``
in the environment point the stack at existing servers instead of starting local ones.

Security: ``up`` generates the installation's secrets once into ``.stack/secrets.json`` (mode 600):
a Kafka password per principal and the token secret. Kafka runs with SASL/SCRAM and ACLs
(``shared.topics.acl_bindings``); each service process gets only its own credential in its
environment. With an external Kafka the environment's KAFKA_* settings are used as they are.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import typer

from deploy import credentials, sites
from deploy.credentials import Secrets
from deploy.local import (
    REPO_ROOT,
    KafkaCluster,
    KafkaServer,
    PostgresServer,
    create_database,
    ensure_kafka_libs,
    kafka_ready,
    pid_alive,
    port_open,
    read_pid,
    replace_database,
    run_sync,
    tail,
    terminate,
)
from shared.settings import Settings
from shared.sites import RegistryError, Site, parse_registry

SERVICES = ("declarations", "review", "ranking", "exchange")
DEFAULT_PORTS = {"declarations": 8101, "review": 8102, "ranking": 8103, "exchange": 8104}

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Local development stack.")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass
class Stack:
    root: Path = field(default_factory=lambda: Path(os.environ.get("STACK_DIR", REPO_ROOT / ".stack")))
    kafka_port: int = field(default_factory=lambda: _env_int("STACK_KAFKA_PORT", 9092))
    kafka_controller_port: int = field(default_factory=lambda: _env_int("STACK_KAFKA_CONTROLLER_PORT", 9093))
    pg_port: int = field(default_factory=lambda: _env_int("STACK_POSTGRES_PORT", 55432))
    # Cluster mode only, when set: the brokers' SITE listeners on this port, +2, +4, advertised one port above
    # each, where a proxy the caller runs (``deploy.link``) forwards: the sites' link to the county, cuttable.
    site_link_port: int = field(default_factory=lambda: _env_int("STACK_SITE_LINK_PORT", 0))
    external_kafka: str | None = field(default_factory=lambda: os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    external_db: str | None = field(default_factory=lambda: os.environ.get("DATABASE_URL"))

    def __post_init__(self) -> None:
        self.run_dir = self.root / "run"
        self.log_dir = self.root / "logs"
        self.secrets_file = self.root / "secrets.json"
        self.sites_file = self.root / "sites.json"  # the community sites joined with `site add`
        self.secrets: Secrets | None = credentials.load(self.secrets_file) if self.secrets_file.exists() else None
        self.cluster = (self.root / "cluster").exists()  # written by `up --cluster`
        self.kafka: KafkaServer | KafkaCluster
        if self.cluster:  # three nodes: 9092, 9094, 9096 (controllers one port above each)
            ports = [self.kafka_port + 2 * i for i in range(3)]
            self.kafka = KafkaCluster(self.root / "kafka-cluster", ports, [p + 1 for p in ports],
                                      secrets=self.secrets, plaintext=self.secrets is None,
                                      site_links=self.site_links or None)  # fmt: skip
        else:
            self.kafka = KafkaServer(self.root / "kafka", self.kafka_port, self.kafka_controller_port,
                                     secrets=self.secrets, plaintext=self.secrets is None)  # fmt: skip
        self.postgres = PostgresServer(self.root / "postgres", self.pg_port)

    @property
    def sites(self) -> list[LocalSite]:
        """The community sites joined to this stack (``site add``), in the order they joined."""
        if not self.sites_file.exists():
            return []
        return [LocalSite(Site(e["name"], e["community"]), e["port"]) for e in json.loads(self.sites_file.read_text())]

    def sites_env(self) -> dict[str, str]:
        """The county's registry of sites, for every county service, every site and the auditor."""
        sites = self.sites
        return {"SITES": ",".join(f"{x.site.name}={x.site.community_id}" for x in sites)} if sites else {}

    def site_dsn(self, site: Site) -> str:
        return replace_database(self.admin_dsn, sites.database_name(site))

    def site_pid(self, site: Site) -> int | None:
        pid = read_pid(self.run_dir / f"{site.principal}.pid")
        return pid if pid_alive(pid, self.service_module("declarations")) else None

    def ensure_secrets(self) -> Secrets:
        """The installation's secrets, generated on the first ``up`` and reused afterwards."""
        if self.secrets is None:
            self.secrets = credentials.load_or_create(self.secrets_file)
            self.kafka.secrets = self.secrets
        return self.secrets

    def topic_env(self) -> dict[str, str]:
        """How topics are created: replicated three times, two in sync, on the cluster."""
        if not self.cluster or self.external_kafka:
            return {}
        return {"TOPIC_REPLICATION_FACTOR": "3", "TOPIC_MIN_INSYNC_REPLICAS": "2"}

    def kafka_env(self, principal: str) -> dict[str, str]:
        """Environment for a process acting as ``principal`` (Kafka credential and token secret)."""
        if self.external_kafka or self.secrets is None:
            return {}
        return self.secrets.env(principal)

    @property
    def bootstrap(self) -> str:
        return self.external_kafka or self.kafka.bootstrap

    @property
    def site_links(self) -> list[tuple[int, int]]:
        """(broker's SITE listener, its advertised port) per node; none unless cluster mode names a port."""
        if not (self.cluster and self.site_link_port):
            return []
        return [(self.site_link_port + 2 * i, self.site_link_port + 2 * i + 1) for i in range(3)]

    @property
    def site_bootstrap(self) -> str:
        """Where the sites' Kafka clients bootstrap: through the site links when there are, else as the county."""
        if self.external_kafka or not isinstance(self.kafka, KafkaCluster):
            return self.bootstrap
        return self.kafka.site_bootstrap

    @property
    def admin_dsn(self) -> str:
        return self.external_db or self.postgres.dsn()

    def service_port(self, name: str) -> int:
        return _env_int(f"STACK_PORT_{name.upper()}", DEFAULT_PORTS[name])

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.service_port(name)}"

    def service_dsn(self, name: str) -> str:
        return replace_database(self.admin_dsn, f"points_{name}")

    def service_module(self, name: str) -> str:
        # STACK_SERVICE_MODULE (e.g. "my_stub.{name}") swaps in stand-ins when testing the stack itself.
        return os.environ.get("STACK_SERVICE_MODULE", "services.{name}").format(name=name)

    def service_pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def service_pid(self, name: str) -> int | None:
        pid = read_pid(self.service_pid_file(name))
        return pid if pid_alive(pid, self.service_module(name)) else None

    def readyz(self, name: str) -> str:
        try:
            r = httpx.get(f"{self.service_url(name)}/readyz", timeout=2)
            return f"{r.status_code}"
        except httpx.HTTPError as exc:
            return type(exc).__name__


@dataclass(frozen=True)
class LocalSite:
    site: Site
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def _start_service(stack: Stack, name: str) -> int:
    pid = stack.service_pid(name)
    if pid is not None:
        return pid
    if port_open(stack.service_port(name)):
        typer.echo(f"cannot start {name}: port {stack.service_port(name)} is taken by another process", err=True)
        raise typer.Exit(1)
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    env = _child_env(
        **stack.kafka_env(name),  # its own credential only
        **stack.topic_env(),
        **stack.sites_env(),
        SERVICE_NAME=name,
        DATABASE_URL=stack.service_dsn(name),
        KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap,
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=str(stack.service_port(name)),
    )
    with open(stack.log_dir / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", stack.service_module(name)], cwd=REPO_ROOT, env=env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    stack.service_pid_file(name).write_text(f"{proc.pid}\n")
    return proc.pid


def _start_site(stack: Stack, local: LocalSite) -> int:
    """A community site's intake side on this machine: the declarations service as site ``local.site``, with
    its own database, its own Kafka credential, and the county's registry of sites."""
    site = local.site
    pid = stack.site_pid(site)
    if pid is not None:
        return pid
    if port_open(local.port):
        typer.echo(f"cannot start site {site.name}: port {local.port} is taken by another process", err=True)
        raise typer.Exit(1)
    env = _child_env(**stack.kafka_env(site.principal), **stack.topic_env(), **stack.sites_env(),
                     SERVICE_NAME="declarations", SITE=site.name, DATABASE_URL=stack.site_dsn(site),
                     KAFKA_BOOTSTRAP_SERVERS=stack.site_bootstrap, HTTP_HOST="127.0.0.1", HTTP_PORT=str(local.port))
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    with open(stack.log_dir / f"{site.principal}.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", stack.service_module("declarations")], cwd=REPO_ROOT, env=env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    (stack.run_dir / f"{site.principal}.pid").write_text(f"{proc.pid}\n")
    return proc.pid


class Gone:
    """Whether a starting process has exited. Right after the fork the child may not yet run the
    new program (its command line is still the parent's), which looks like "not ours"; only a
    process missing for ``grace_s`` in a row counts as exited."""

    def __init__(self, grace_s: float = 3.0) -> None:
        self.grace_s = grace_s
        self.since: float | None = None

    def for_good(self, pid: int | None) -> bool:
        if pid is not None:
            self.since = None
            return False
        now = time.monotonic()
        self.since = self.since if self.since is not None else now
        return now - self.since >= self.grace_s


def _wait_site(stack: Stack, local: LocalSite, timeout: float = 60) -> None:
    def ready() -> bool:
        try:
            return httpx.get(f"{local.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    _wait_started(f"site {local.site.name}", lambda: stack.site_pid(local.site), ready,
                  stack.log_dir / f"{local.site.principal}.log", timeout)


def _wait_started(what: str, pid: Callable[[], int | None], ready: Callable[[], bool], log: Path,
                  timeout: float) -> None:
    """Until ``ready``; exits 1 with the log's last lines when the process is gone or not ready in time."""
    deadline = time.monotonic() + timeout
    gone = Gone()
    while time.monotonic() < deadline:
        if gone.for_good(pid()):
            typer.echo(f"{what} exited during start-up. Last lines of {log}:\n{tail(log)}", err=True)
            raise typer.Exit(1)
        if ready():
            return
        time.sleep(0.3)
    typer.echo(f"{what}: GET /readyz not 200 after {timeout:.0f}s. Last lines of {log}:\n{tail(log)}", err=True)
    raise typer.Exit(1)


def _stop_sites(stack: Stack) -> None:
    for local in stack.sites:
        pid = stack.site_pid(local.site)
        if pid is not None:
            typer.echo(f"stopping site {local.site.name} (pid {pid})")
            terminate(pid, stack.service_module("declarations"), timeout=15)
        (stack.run_dir / f"{local.site.principal}.pid").unlink(missing_ok=True)


def _wait_ready(stack: Stack, name: str, timeout: float = 60) -> None:
    _wait_started(f"service {name}", lambda: stack.service_pid(name), lambda: stack.readyz(name) == "200",
                  stack.log_dir / f"{name}.log", timeout)


def _stop_services(stack: Stack) -> None:
    for name in reversed(SERVICES):
        pid = stack.service_pid(name)
        if pid is not None:
            typer.echo(f"stopping {name} (pid {pid})")
            terminate(pid, stack.service_module(name), timeout=15)
        stack.service_pid_file(name).unlink(missing_ok=True)


@app.command()
def up(demo: bool = typer.Option(True, help="Load demo data with `python -m deploy.demo`."),
       cluster: bool = typer.Option(False, "--cluster", help="Three Kafka nodes (RF 3, min ISR 2) instead of one; "
                                                          "on a wiped stack (`make wipe`).")) -> None:
    """Start Postgres, Kafka, the topics and the four services (harmless when already running)."""
    stack = Stack()
    if cluster and not stack.cluster:
        if (stack.root / "kafka").exists() or (stack.root / "postgres").exists():
            typer.echo("this stack has single-node data: `make wipe` first, then `make up-cluster`", err=True)
            raise typer.Exit(1)
        stack.root.mkdir(parents=True, exist_ok=True)
        (stack.root / "cluster").write_text("3 Kafka nodes\n")
        stack = Stack()
    if stack.cluster:
        typer.echo("Kafka: cluster mode, three nodes, topics replicated three times (min.insync.replicas 2)")
    t0 = time.monotonic()
    if stack.external_db:
        typer.echo(f"PostgreSQL: using DATABASE_URL server ({stack.admin_dsn})")
    else:
        typer.echo("PostgreSQL: starting" if not stack.postgres.running else "PostgreSQL: already running")
        stack.postgres.start()
    for name in SERVICES:
        create_database(stack.admin_dsn, f"points_{name}")
    create_database(stack.admin_dsn, "points_audit")  # the auditor's scratch schemas (points-audit replay)
    for local in stack.sites:
        create_database(stack.admin_dsn, sites.database_name(local.site))
    if stack.external_kafka:
        typer.echo(f"Kafka: using KAFKA_BOOTSTRAP_SERVERS={stack.external_kafka} (credentials from the environment)")
        client = {k: v for k, v in {
            "security_protocol": os.environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
            "sasl_mechanism": os.environ.get("KAFKA_SASL_MECHANISM"),
            "sasl_plain_username": os.environ.get("KAFKA_SASL_USERNAME"),
            "sasl_plain_password": os.environ.get("KAFKA_SASL_PASSWORD")}.items() if v}  # fmt: skip
        if not kafka_ready(stack.external_kafka, **client):
            typer.echo(f"Kafka at {stack.external_kafka} does not answer", err=True)
            raise typer.Exit(1)
    else:
        secrets = stack.ensure_secrets()
        typer.echo(f"secrets: {stack.secrets_file} (mode 600; Kafka principals {', '.join(secrets.scram_users)})")
        typer.echo("Kafka: starting (SASL/SCRAM, ACLs)" if not stack.kafka.running else "Kafka: already running")
        ensure_kafka_libs(REPO_ROOT)
        stack.kafka.start()
        # Principals added since the storage was formatted (SCRAM users live in the metadata log).
        from shared.settings import Settings
        from shared.topics import upsert_scram_users

        admin = Settings(kafka_bootstrap_servers=stack.bootstrap, **secrets.kafka_settings(credentials.ADMIN))
        others = {p: pw for p, pw in secrets.scram_users.items() if p != credentials.ADMIN}
        run_sync(upsert_scram_users(admin, others, credentials.SCRAM_MECHANISM))
    if _module_exists("shared.topics"):  # topics, and every principal's ACLs, as the super user
        res = subprocess.run([sys.executable, "-m", "shared.topics", "create"], cwd=REPO_ROOT,
                             env=_child_env(**stack.kafka_env(credentials.ADMIN), **stack.topic_env(),
                                            **stack.sites_env(), KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap))  # fmt: skip
        if res.returncode != 0:
            typer.echo("`python -m shared.topics create` failed", err=True)
            raise typer.Exit(res.returncode)
    else:
        typer.echo("warning: shared.topics not found, no topics created", err=True)
    _write_audit_env(stack)
    started = [name for name in SERVICES if stack.service_pid(name) is None]
    for name in SERVICES:
        _start_service(stack, name)
    for name in SERVICES:
        _wait_ready(stack, name)
    for local in stack.sites:
        _start_site(stack, local)
        _wait_site(stack, local)
    if started:
        typer.echo(f"started {', '.join(started)}")
    if demo and started and _module_exists("deploy.demo"):
        typer.echo("loading demo data (python -m deploy.demo)")
        env = _child_env(KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap)
        if stack.secrets is not None and not stack.external_kafka:
            env["TOKEN_SECRET"] = stack.secrets.token_secret  # it signs the demo staff's tokens
        for name in SERVICES:
            env[f"{name.upper()}_URL"] = stack.service_url(name)
            env[f"{name.upper()}_DATABASE_URL"] = stack.service_dsn(name)
        res = subprocess.run([sys.executable, "-m", "deploy.demo"], cwd=REPO_ROOT, env=env)
        if res.returncode != 0:
            typer.echo("demo data failed to load", err=True)
            raise typer.Exit(res.returncode)
    if demo and started:
        _verify(stack)
    typer.echo(f"stack up in {time.monotonic() - t0:.1f}s\n")
    _print_table(stack)


def _write_audit_env(stack: Stack) -> None:
    """Where the auditor's command line (points-audit) finds the stack: the read-only auditor's Kafka
    credential, each service's database, the auditor's own scratch database. Owner only."""
    env = {"KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "AUDIT_DATABASE_URL": replace_database(stack.admin_dsn,
                                                                                               "points_audit")}
    env |= {k: v for k, v in stack.kafka_env("auditor").items() if k.startswith("KAFKA_")}
    env |= {f"{name.upper()}_DATABASE_URL": stack.service_dsn(name) for name in SERVICES}
    env |= stack.sites_env() | {f"SITE_{x.site.name.upper().replace('-', '_')}_DATABASE_URL": stack.site_dsn(x.site)
                                for x in stack.sites}
    path = stack.root / "audit.env"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())))


def _verify(stack: Stack) -> bool:
    """The auditor's check of each service's log and each site's: event store against topic, one hash chain."""
    ok = True
    chains = [(name, ["--service", name, "--database-url", stack.service_dsn(name)]) for name in SERVICES]
    chains += [(f"site {x.site.name}", ["--site", x.site.name, "--database-url", stack.site_dsn(x.site)])
               for x in stack.sites]
    for name, args in chains:
        env = _child_env(KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap, SERVICE_NAME=name.split()[0],
                         **stack.kafka_env("auditor"))
        res = subprocess.run([sys.executable, "-m", "shared.verify", *args, "--json"],
                             cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        try:
            report = json.loads(res.stdout)
        except ValueError:
            report = {}
        ok = ok and res.returncode == 0
        verdict = "verified" if res.returncode == 0 else "PROBLEM"
        typer.echo(f"chain {name}: {verdict}, {report.get('store_events', '?')} chained events in the store"
                   f"{' (+' + str(report['legacy']) + ' from before the chain)' if report.get('legacy') else ''}, "
                   f"{report.get('topic_records', '?')} records on the topic"
                   + ("" if res.returncode == 0 else f"\n{res.stdout or res.stderr}"))
    return ok


@app.command()
def verify() -> None:
    """Verify every service's hash chain, event store against topic, as the auditor principal."""
    if not _verify(Stack()):
        raise typer.Exit(1)


def _print_table(stack: Stack) -> None:
    rows: list[tuple[str, str, str, str]] = []
    if stack.external_kafka:
        rows.append(("kafka", "external", "-", stack.external_kafka))
    else:
        pid = stack.kafka.pid
        rows.append(("kafka", "running" if stack.kafka.running else "stopped", str(pid or "-"),
                     stack.kafka.bootstrap))  # fmt: skip
    if stack.external_db:
        rows.append(("postgres", "external", "-", stack.admin_dsn))
    else:
        pid = stack.postgres.pid
        rows.append(("postgres", "running" if stack.postgres.running else "stopped", str(pid or "-"),
                     stack.postgres.dsn()))  # fmt: skip
    for name in SERVICES:
        pid = stack.service_pid(name)
        state = f"running, /readyz {stack.readyz(name)}" if pid else "stopped"
        rows.append((name, state, str(pid or "-"), f"{stack.service_url(name)}/  (API docs: /docs)"))
    for local in stack.sites:
        pid = stack.site_pid(local.site)
        rows.append((f"site {local.site.name}", "running" if pid else "stopped", str(pid or "-"),
                     f"{local.url}/  (community {local.site.community_id})"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    header = ("component", "state", "pid", "address")
    for r in [header, *rows]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
    typer.echo(f"\nlogs: {stack.log_dir}/<service>.log, {stack.kafka.log_dir}/server.log, "
               f"{stack.postgres.log_file}")  # fmt: skip


@app.command()
def down() -> None:
    """Stop the services, then Kafka, then PostgreSQL (harmless when nothing runs)."""
    stack = Stack()
    _stop_sites(stack)
    _stop_services(stack)
    if not stack.external_kafka and (stack.kafka.pid is not None or stack.cluster):
        typer.echo("stopping Kafka")
        stack.kafka.stop()
    if not stack.external_db and stack.postgres.pid is not None:
        typer.echo("stopping PostgreSQL")
        stack.postgres.stop()
    typer.echo("stack is down")


@app.command()
def wipe() -> None:
    """``down``, then delete all stack data (the Kafka jar cache is kept)."""
    down()
    stack = Stack()
    if stack.root.exists():
        for child in stack.root.iterdir():
            if child.name == "kafka-lib":
                continue
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    typer.echo(f"wiped {stack.root} (kept kafka-lib)")


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Show each component: running or not, pid, address and (services) /readyz."""
    stack = Stack()
    if as_json:
        data = {
            "kafka": {"bootstrap": stack.bootstrap, "pid": stack.kafka.pid,
                      "running": bool(stack.external_kafka) or stack.kafka.running},
            "postgres": {"dsn": stack.admin_dsn, "pid": stack.postgres.pid,
                         "running": bool(stack.external_db) or stack.postgres.running},
            **{n: {"url": stack.service_url(n), "pid": stack.service_pid(n), "readyz": stack.readyz(n)}
               for n in SERVICES},
        }  # fmt: skip
        typer.echo(json.dumps(data, indent=2))
        return
    _print_table(stack)


site_app = typer.Typer(no_args_is_help=True, help="Community sites of the local county (docs/sites.md).")
app.add_typer(site_app, name="site")


@site_app.command("add")
def site_add(name: str = typer.Argument(..., help="The site's name: lower-case letters, digits, dashes."),
             community: str = typer.Option(..., help="The one community the site takes declarations for."),
             port: int = typer.Option(0, help="Its HTTP port (default: 8111, 8112, … in order of joining).")) -> None:
    """A community joins as a site: its database, its Kafka principal and ACLs, the county's registry (the
    county's services restart to read it), then the site itself. Run on a stack that is up."""
    stack = Stack()
    if not (stack.external_db or stack.postgres.running) or not (stack.external_kafka or stack.kafka.running):
        typer.echo("the stack is not running: `make up` first", err=True)
        raise typer.Exit(1)
    joined = stack.sites
    site = Site(name, community)
    if any(x.site == site for x in joined):
        typer.echo(f"site {name} (community {community}) has joined already")
    else:
        try:
            parse_registry(",".join([*(f"{x.site.name}={x.site.community_id}" for x in joined), f"{name}={community}"]))
        except RegistryError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        port = port or 8111 + len(joined)
        create_database(stack.admin_dsn, sites.database_name(site))
        if not stack.external_kafka:  # with an external Kafka its admin gives the site its user and ACLs
            secrets = stack.ensure_secrets()
            admin = Settings(kafka_bootstrap_servers=stack.bootstrap, **secrets.kafka_settings(credentials.ADMIN))
            stack.secrets = run_sync(sites.admit(admin, [site], stack.secrets_file))
        entries = [{"name": x.site.name, "community": x.site.community_id, "port": x.port} for x in joined]
        stack.sites_file.write_text(json.dumps([*entries, {"name": name, "community": community, "port": port}],
                                               indent=2) + "\n")
        stack = Stack()
        _write_audit_env(stack)
        typer.echo(f"site {name} joined the registry (SITES={stack.sites_env()['SITES']}); restarting the county's "
                   "services so they accept it")
        _stop_services(stack)
        for service in SERVICES:
            _start_service(stack, service)
        for service in SERVICES:
            _wait_ready(stack, service)
    for local in stack.sites:
        if local.site == site:
            _start_site(stack, local)
            _wait_site(stack, local)
            typer.echo(f"site {name}: {local.url} (community {community}; log {stack.log_dir}/{site.principal}.log)")


@site_app.command("list")
def site_list() -> None:
    """The sites of the local county."""
    stack = Stack()
    for local in stack.sites:
        state = "running" if stack.site_pid(local.site) else "stopped"
        typer.echo(f"{local.site.name}\tcommunity {local.site.community_id}\t{local.url}\t{state}")


if __name__ == "__main__":
    app()
