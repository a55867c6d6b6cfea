"""The suite's own cluster-mode stack: ``deploy.stack`` in a fresh folder on free ports, one community site
whose relay runs as a process of its own, the site's network link to the county's Kafka cluster (every
connection of the site's Kafka clients goes through a TCP proxy this process owns, ``deploy.link``: cutting
it drops them all and refuses new ones; the site keeps taking declarations into its outbox meanwhile and
forwards them once restored), and the levers the faults pull."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from deploy import credentials
from deploy import stack as local_stack
from deploy.link import Link
from deploy.local import (
    REPO_ROOT,
    ensure_kafka_libs,
    free_port,
    free_ports,
    pid_alive,
    port_open,
    stop_process,
    terminate,
    wait_until_ready,
)
from shared.settings import Settings
from shared.sites import Site

SITE = Site("faults", "c-site")
COUNTY_COMMUNITY = "c-county"


def _free_run(n: int) -> int:
    """A base port with ``n`` free ports from it (the cluster's nodes take base, base + 2, … and +1 each)."""
    for _ in range(200):
        base = random.randrange(20_000, 40_000, 2)
        if not any(port_open(p) for p in range(base, base + n)):
            return base
    raise RuntimeError("no run of free ports found")


@dataclass
class Harness:
    """(*) deploy.stack's start-up checks look for the module in the process's command line; right after
    the fork it is still the parent's, so under load a fresh process can look as if it had exited."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    site_proc: subprocess.Popen[bytes] | None = None
    relay_proc: subprocess.Popen[bytes] | None = None
    site_port: int = 0
    relay_restarts: int = 0
    link: Link | None = None  # the site's link to the brokers

    @classmethod
    def create(cls, root: Path | None = None) -> Harness:
        root = root or Path(tempfile.mkdtemp(prefix="points-faults-"))
        base = _free_run(12)  # the nodes' client and controller ports, then their site listeners and proxies
        postgres, *ports = free_ports(1 + len(local_stack.SERVICES))
        env = {"STACK_DIR": str(root), "STACK_KAFKA_PORT": str(base), "STACK_SITE_LINK_PORT": str(base + 6),
               "STACK_POSTGRES_PORT": str(postgres)}
        env |= {f"STACK_PORT_{name.upper()}": str(port) for name, port in zip(local_stack.SERVICES, ports, strict=True)}
        for var in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"):  # ours alone: never someone else's servers
            os.environ.pop(var, None)
        os.environ.update(env)
        return cls(root, env)

    @property
    def stack(self) -> local_stack.Stack:
        return local_stack.Stack()  # reads STACK_DIR and the ports from the environment

    def _cli(self, *args: str) -> None:
        res = subprocess.run([sys.executable, "-m", "deploy.stack", *args], cwd=REPO_ROOT,
                             env=local_stack._child_env(), capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"deploy.stack {' '.join(args)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")

    def up(self) -> None:
        """``make up-cluster`` in our folder, then the site joins (its database, principal, ACLs, registry)."""
        self._start_kafka(timeout=600)
        self.link = Link([(advertised, listener) for listener, advertised in self.stack.site_links]).start()
        self._cli("up", "--cluster", "--no-demo")
        self.site_port = free_port()
        for attempt in range(3):  # `site add` is idempotent; its start-up check can race a fresh process (*)
            try:
                self._cli("site", "add", SITE.name, "--community", SITE.community_id, "--port", str(self.site_port))
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        stack = self.stack
        pid = stack.site_pid(SITE)
        if pid is not None:  # started with its relay inside: run it again with the relay apart
            terminate(pid, stack.service_module("declarations"), timeout=15)
        self.site_proc = self._site_process(RUN_RELAY="false")
        wait_until_ready(f"site {SITE.name}", self.site_url, self.site_proc, self.stack.log_dir / "site-faults.log", 90)
        self.start_site_relay()

    def _start_kafka(self, timeout: float) -> None:
        """The three nodes first, with time to spare: on a busy machine they take longer than ``up`` waits.
        ``up --cluster`` then finds them running (the folder is marked as a cluster's, as ``up`` does)."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "cluster").write_text("3 Kafka nodes\n")
        stack = self.stack
        stack.ensure_secrets()
        ensure_kafka_libs(REPO_ROOT)
        stack.kafka.start(timeout=timeout)

    def down(self, keep: bool = False) -> None:
        self.stop_site_relay()
        if self.site_proc is not None:
            stop_process(self.site_proc)
        if self.link is not None:
            self.link.close()
        try:
            self._cli("down")
        finally:
            if not keep:
                shutil.rmtree(self.root, ignore_errors=True)

    # --- what the suite reads and writes with
    def admin_settings(self) -> Settings:
        stack = self.stack
        assert stack.secrets is not None
        return Settings(kafka_bootstrap_servers=stack.bootstrap, sites=f"{SITE.name}={SITE.community_id}",
                        **stack.secrets.kafka_settings(credentials.ADMIN))

    def token_secret(self) -> str:
        assert self.stack.secrets is not None
        return str(self.stack.secrets.token_secret)

    @property
    def county_url(self) -> str:
        return self.stack.service_url("declarations")

    @property
    def site_url(self) -> str:
        return f"http://127.0.0.1:{self.site_port}"

    def service_dsn(self, name: str) -> str:
        return self.stack.service_dsn(name)

    def site_dsn(self) -> str:
        return self.stack.site_dsn(SITE)

    def audit_dsn(self) -> str:
        return self.stack.admin_dsn.rpartition("/")[0] + "/points_audit"

    # --- levers
    def kill_broker(self, index: int) -> None:
        self.stack.kafka.nodes[index].kill()  # type: ignore[union-attr]

    def start_broker(self, index: int) -> None:
        self.stack.kafka.nodes[index].start(120)  # type: ignore[union-attr]

    def restart_postgres(self) -> None:
        pg = self.stack.postgres
        pg.stop()
        pg.start()

    def kill_service(self, name: str) -> None:
        pid = self.stack.service_pid(name)
        if pid is None:
            raise RuntimeError(f"service {name} is not running")
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        _reap(pid)

    def start_service(self, name: str) -> None:
        stack = self.stack
        stack.service_pid_file(name).unlink(missing_ok=True)
        local_stack._start_service(stack, name)
        time.sleep(0.5)  # (*) until the child has exec'd, its command line is ours and it looks "exited"
        local_stack._wait_ready(stack, name, timeout=120)

    def cut_site_link(self) -> None:
        assert self.link is not None
        self.link.cut()

    def restore_site_link(self) -> None:
        assert self.link is not None
        self.link.restore()

    @property
    def site_relay_pid(self) -> int | None:
        return self.relay_proc.pid if self.relay_proc is not None and self.relay_proc.poll() is None else None

    def start_site_relay(self) -> None:
        env = self._site_env()
        self.relay_proc = subprocess.Popen([sys.executable, "-m", "shared.relay", "declarations"], cwd=REPO_ROOT,
                                           env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                           stderr=open(self.stack.log_dir / "site-faults-relay.log", "ab"),
                                           start_new_session=True)

    def keep_site_relay_up(self) -> bool:
        """The supervisor's part (systemd ``Restart=always`` on a site): a relay that exited on its own is
        started again; the standalone relay exits when PostgreSQL restarts under it. True if restarted."""
        if self.relay_proc is not None and self.relay_proc.poll() is not None:
            self.relay_restarts += 1
            self.start_site_relay()
            return True
        return False

    def stop_site_relay(self) -> None:
        if self.relay_proc is not None and self.relay_proc.poll() is None:
            os.killpg(self.relay_proc.pid, signal.SIGKILL)
            self.relay_proc.wait(10)
        self.relay_proc = None

    def _site_env(self, **extra: str) -> dict[str, str]:
        stack = self.stack
        return local_stack._child_env(**stack.kafka_env(SITE.principal), **stack.topic_env(), **stack.sites_env(),
                                      SERVICE_NAME="declarations", SITE=SITE.name, DATABASE_URL=self.site_dsn(),
                                      KAFKA_BOOTSTRAP_SERVERS=stack.site_bootstrap, HTTP_HOST="127.0.0.1",
                                      HTTP_PORT=str(self.site_port), **extra)

    def _site_process(self, **extra: str) -> subprocess.Popen[bytes]:
        log = open(self.stack.log_dir / "site-faults.log", "ab")
        return subprocess.Popen([sys.executable, "-m", "services.declarations"], cwd=REPO_ROOT,
                                env=self._site_env(**extra), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _reap(pid: int) -> None:
    """A service this process restarted is its child: collect it (no zombie left behind)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
