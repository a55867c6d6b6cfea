"""Intake benchmark: sustained HTTP declarations into the declarations service, all the way to Kafka.

Starts Kafka + PostgreSQL (deploy.testing), runs the declarations service as a uvicorn process
(BENCH_NOOP=1, so the same server also answers ``POST /bench/noop``), seeds a community with
subjects through the API, then on loopback:
  1. drives ``POST /bench/noop`` with the same body and connections: the server's HTTP ceiling;
  2. drives ``POST /declarations`` (a fresh Idempotency-Key each), bounded in count and time;
  3. waits until every accepted declaration is a record on the declarations topic.
Prints declarations/s end to end (first request -> last record on Kafka), p50/p99 latency and the
ratio to the no-op rate, and the CPU each part spends per request. Load generator: wrk (Debian
package ``wrk``) when installed, else httpx, which itself burns several CPU ms per request and so
understates the service on a small machine.

Usage: .venv/bin/python bench/intake.py [--declarations 30000] [--seconds 60] [--connections 64] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import psutil
from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy.local import REPO_ROOT, create_database, free_port, settings_env, stop_process, wait_until_ready
from deploy.testing import StackHandle, throwaway_stack
from shared.auth import Principal, Role, issue_token
from shared.kafka import consumer_config
from shared.projection import partitions_of
from shared.settings import Settings
from shared.topics import DECLARATIONS, create_topics

COMMUNITY = "c-bench"
RULE = "VOLUNTEER_HOURS"  # 2 points per hour, cap 200 a month: 100 one-hour items per subject per month
AIM = 1000.0  # declarations per second (issue 3)


@dataclass
class Service:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start_service(settings: Settings, workers: int, log: Path, timeout: float = 90) -> Service:
    port = free_port()
    # Same server options as shared.service.serve (uvloop, httptools, no access log), plus --workers.
    cmd = [sys.executable, "-m", "uvicorn", "services.declarations.app:build", "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers), "--loop", "uvloop", "--http", "httptools",
           "--log-level", "warning", "--no-access-log"]
    out = log.open("wb")
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=settings_env(settings, BENCH_NOOP="1", HTTP_PORT=str(port)),
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_ready("service", url, proc, log, timeout)
    return Service(url, proc, log)


def stop_service(svc: Service) -> None:
    stop_process(svc.process, timeout=30)


def seed(svc: Service, admin_token: str, subjects: int) -> list[str]:
    """Register the community and its volunteers through the roster API (when this build has it)."""
    with httpx.Client(base_url=svc.url, headers={"authorization": f"Bearer {admin_token}"}, timeout=60) as http:
        paths = http.get("/openapi.json").json().get("paths", {})
        ids = [f"s-{i:05d}" for i in range(subjects)]
        if "post" not in paths.get("/subjects", {}):
            print("  (no roster endpoints on this build: declaring for unregistered subject ids)")
            return ids
        r = http.post("/communities", json={"community_id": COMMUNITY, "name": "压测社区"},
                      headers={"idempotency-key": f"seed-{COMMUNITY}"})
        if r.status_code != 201:
            raise RuntimeError(f"cannot register the community: {r.status_code} {r.text}")
        for start in range(0, subjects, 1000):
            batch = [{"subject_id": s, "kind": "person", "name": f"志愿者{i:05d}", "categories": ["volunteer"],
                      "gender": "female" if i % 2 else "male"} for i, s in enumerate(ids[start:start + 1000], start)]
            r = http.post("/subjects", json={"community_id": COMMUNITY, "subjects": batch},
                          headers={"idempotency-key": f"seed-subjects-{start}"})
            if r.status_code != 201:
                raise RuntimeError(f"cannot register subjects: {r.status_code} {r.text[:2000]}")
        return ids


async def topic_records(settings: Settings) -> int:
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [DECLARATIONS.name(settings)])
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def wait_on_kafka(settings: Settings, want: int, within_s: float) -> tuple[int, float]:
    """Poll the topic's end offsets (no compaction, no transactions: offsets count records)."""
    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [DECLARATIONS.name(settings)])
        deadline = time.perf_counter() + within_s
        while True:
            seen = sum((await consumer.end_offsets(tps)).values())
            now = time.perf_counter()
            if seen >= want or now > deadline:
                return seen, now
            await asyncio.sleep(0.02)
    finally:
        await consumer.stop()


async def all_published(pool: asyncpg.Pool, within_s: float = 120) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not await pool.fetchval("select count(*) from events where published_at is null"):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the relay did not publish the store's events within {within_s} s")


class CpuMeter:
    """CPU seconds spent by each part of the run (process trees), to say where a declaration's cost goes."""

    def __init__(self, parts: dict[str, int | None]) -> None:
        self.parts = {name: pid for name, pid in parts.items() if pid}
        self.start: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        used = {}
        for name, pid in self.parts.items():
            total = 0.0
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                for proc in (root, *root.children(recursive=True)):
                    with contextlib.suppress(psutil.Error):
                        t = proc.cpu_times()
                        total += t.user + t.system
            used[name] = total
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk runs, once waited for
        used["load generator"] = kids.ru_utime + kids.ru_stime + time.process_time()
        return used

    def begin(self) -> None:
        self.start = self._now()

    def spent(self) -> dict[str, float]:
        now = self._now()
        return {name: now[name] - self.start.get(name, 0.0) for name in now}


def cpu_line(spent: dict[str, float], n: int) -> str:
    parts = "; ".join(f"{name} {seconds / n * 1e3:.2f}" for name, seconds in spent.items())
    return f"{parts}; total {sum(spent.values()) / n * 1e3:.2f}"


def fmt(load: Load, label: str) -> str:
    return (f"{label:<22}: {load.completed:>7,} requests in {load.seconds:6.2f} s = {load.rate:>8,.0f} req/s; "
            f"p50 {load.p50_ms:6.1f} ms, p99 {load.p99_ms:6.1f} ms; non-2xx {load.failed:,}"
            + (f" (first: {load.first_failure})" if load.first_failure else ""))


# ---------------------------------------------------------------------------------------------------------
# load generators: closed loop, N connections, each request with its own Idempotency-Key


@dataclass
class Load:
    completed: int
    failed: int  # non-2xx answers
    seconds: float
    p50_ms: float
    p99_ms: float
    first_failure: str = ""

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0


def body_for(community: str, subject: str, rule: str, occurred_on: str) -> dict[str, Any]:
    return {"community_id": community, "subject_id": subject, "rule_code": rule, "quantity": 1,
            "occurred_on": occurred_on, "channel": "oral", "description": "志愿服务 1 小时", "evidence": []}


WRK_SCRIPT = r"""
-- args: path token community rule occurred_on subjects(comma) limit run_id
local threads, next_id = {}, 0
function setup(thread)
  thread:set("tid", next_id); next_id = next_id + 1; table.insert(threads, thread)
end
function init(args)
  path, auth, community, rule, day = args[1], "Bearer " .. args[2], args[3], args[4], args[5]
  subjects = {}
  for s in string.gmatch(args[6], "[^,]+") do table.insert(subjects, s) end
  limit, prefix = tonumber(args[7]), args[8] .. "-" .. tid .. "-"
  sent, answered, failed, first = 0, 0, 0, ""
end
function request()
  sent = sent + 1
  local body = string.format('{"community_id":"%s","subject_id":"%s","rule_code":"%s","quantity":1,'
    .. '"occurred_on":"%s","channel":"oral","description":"志愿服务 1 小时","evidence":[]}',
    community, subjects[(sent * 7 + tid * 13) % #subjects + 1], rule, day)
  return wrk.format("POST", path, {["Content-Type"] = "application/json", ["Authorization"] = auth,
    ["Idempotency-Key"] = prefix .. sent}, body)
end
function response(status, headers, body)
  answered = answered + 1
  if status >= 300 then
    failed = failed + 1
    if first == "" then first = status .. " " .. string.sub(body, 1, 200) end
  end
  if answered == limit then
    io.write("WRK_LIMIT\n"); io.flush()  -- the driver interrupts wrk once every thread is there
    wrk.thread:stop()
  end
end
function done(summary, latency, requests)
  local failed_all, first_all = 0, ""
  for _, t in ipairs(threads) do
    failed_all = failed_all + t:get("failed")
    if first_all == "" then first_all = t:get("first") end
  end
  io.write(string.format("WRK %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), failed_all))
  io.write("WRK_FIRST " .. first_all .. "\n")
end
"""


async def drive_wrk(*, url: str, path: str, token: str, community: str, rule: str, subjects: list[str],
                    occurred_on: str, connections: int, count: int, seconds: float, run_id: str,
                    tmp: Path) -> Load:
    script = tmp / "intake.lua"
    script.write_text(WRK_SCRIPT)
    threads = min(os.cpu_count() or 1, connections)
    per_thread = max(1, count // threads)
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{int(seconds)}s", "--timeout", "10s",
           "-s", str(script), url, "--", path, token, community, rule, occurred_on, ",".join(subjects),
           str(per_thread), f"{run_id}-{uuid.uuid4().hex[:8]}"]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    # wrk sleeps for the whole -d even when every thread stopped itself: SIGINT ends it (and its clock) early.
    chunks, at_limit = [], 0
    while line := await proc.stdout.readline():
        chunks.append(line)
        if line.startswith(b"WRK_LIMIT"):
            at_limit += 1
            if at_limit == threads:
                proc.send_signal(signal.SIGINT)
    out, err = b"".join(chunks), await proc.stderr.read()
    await proc.wait()
    lines = out.decode(errors="replace").splitlines()
    numbers = next((ln.split()[1:] for ln in lines if ln.startswith("WRK ")), None)
    if proc.returncode != 0 or numbers is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {out.decode()[-2000:]} {err.decode()[-2000:]}")
    requests, duration_us, p50_us, p99_us, failed = (int(n) for n in numbers)
    first = next((ln.removeprefix("WRK_FIRST ") for ln in lines if ln.startswith("WRK_FIRST ")), "")
    return Load(requests, failed, duration_us / 1e6, p50_us / 1e3, p99_us / 1e3, first.strip())


async def drive_httpx(*, url: str, path: str, token: str, community: str, rule: str, subjects: list[str],
                      occurred_on: str, connections: int, count: int, seconds: float, run_id: str,
                      tmp: Path) -> Load:
    del tmp
    latencies: list[float] = []
    failures: list[str] = []
    issued = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"authorization": f"Bearer {token}"}
    prefix = f"{run_id}-{uuid.uuid4().hex[:8]}-"
    began = time.perf_counter()
    deadline = began + seconds

    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=10) as http:
        async def worker() -> None:
            nonlocal issued
            while issued < count and time.perf_counter() < deadline:
                issued += 1
                body = body_for(community, subjects[issued * 7 % len(subjects)], rule, occurred_on)
                sent = time.perf_counter()
                r = await http.post(path, json=body, headers={"idempotency-key": f"{prefix}{issued}"})
                latencies.append(time.perf_counter() - sent)
                if r.status_code >= 300:
                    failures.append(f"{r.status_code} {r.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3 if latencies else 0.0

    return Load(len(latencies), len(failures), elapsed, pct(0.50), pct(0.99), failures[0] if failures else "")


async def run(args: argparse.Namespace, stack: StackHandle, tmp: Path) -> int:
    bootstrap, dsn = stack.bootstrap, stack.dsn
    ns = f"bench{uuid.uuid4().hex[:6]}"
    settings = Settings(database_url=create_database(dsn, ns), kafka_bootstrap_servers=bootstrap, topic_namespace=ns,
                        topic_partitions=args.partitions, run_projections=not args.no_projections)
    await create_topics(settings)
    svc = start_service(settings, args.workers, tmp / "service.log")
    try:
        print(f"service: {svc.url} (uvicorn, {args.workers} worker(s), projections "
              f"{'off' if args.no_projections else 'in process'}); log {svc.log}", flush=True)
        admin = issue_token(Principal(sub="bench-admin", role=Role.county_admin, community="*", name="压测管理员"))
        recorder = issue_token(Principal(sub="bench-recorder", role=Role.recorder, community=COMMUNITY,
                                         name="压测记录员"))
        # The rule's monthly cap allows 100 one-hour items per subject: keep every declaration under it.
        subjects = seed(svc, admin, max(args.subjects, -(-args.declarations * 11 // 10 // 80)))
        today = dt.datetime.now(ZoneInfo(settings.timezone)).date()
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
        try:
            drive = drive_wrk if (shutil.which("wrk") and args.client != "httpx") else drive_httpx
            common = dict(url=svc.url, token=recorder, community=COMMUNITY, rule=RULE, subjects=subjects,
                          occurred_on=today.isoformat(), connections=args.connections, tmp=tmp)
            print(f"load generator: {drive.__name__.removeprefix('drive_')}, {args.connections} connections; "
                  f"{len(subjects)} subjects, rule {RULE}", flush=True)
            await drive(path="/bench/noop", count=min(2000, args.declarations), seconds=10, run_id="warm", **common)
            meter = CpuMeter({"service": svc.process.pid,
                              "postgres": stack.postgres.pid if stack.postgres else None,
                              "kafka": stack.kafka.pid if stack.kafka else None})
            meter.begin()
            noop = await drive(path="/bench/noop", count=args.declarations, seconds=args.seconds, run_id="noop",
                               **common)
            noop_cpu = meter.spent()
            print(fmt(noop, "no-op POST"), flush=True)
            await drive(path="/declarations", count=min(1000, args.declarations // 10), seconds=10, run_id="warm",
                        **common)
            await all_published(pool)  # seeding and warm-up events are on Kafka before the clock starts
            before_db = await pool.fetchval("select count(*) from events")
            before_kafka = await topic_records(settings)
            meter.begin()
            began = time.perf_counter()
            decl = await drive(path="/declarations", count=args.declarations, seconds=args.seconds, run_id="decl",
                               **common)
            await asyncio.sleep(0.5)  # requests abandoned in flight by the load generator may still commit
            accepted = await pool.fetchval("select count(*) from events") - before_db
            on_kafka, landed = await wait_on_kafka(settings, before_kafka + accepted, within_s=120)
            on_kafka -= before_kafka
            decl_cpu = meter.spent()
            unpublished = await pool.fetchval("select count(*) from events where published_at is null")
        finally:
            await pool.close()
    finally:
        stop_service(svc)

    e2e = on_kafka / (landed - began)
    print(fmt(decl, "POST /declarations"))
    print(f"accepted (events in the store): {accepted:,}; on Kafka: {on_kafka:,}; unpublished: {unpublished:,}; "
          f"last record on Kafka {landed - began - decl.seconds:.2f} s after the last response")
    print()
    print(f"declarations/s, HTTP 201         = {decl.rate:,.0f}")
    print(f"declarations/s, end to end Kafka = {e2e:,.0f}   (aim ≥ {AIM:,.0f})")
    print(f"p50 / p99 latency                = {decl.p50_ms:.1f} ms / {decl.p99_ms:.1f} ms")
    print(f"ratio to no-op (HTTP)            = {decl.rate / noop.rate:.2f}")
    print(f"ratio to no-op (end to end)      = {e2e / noop.rate:.2f}")
    print()
    cores = os.cpu_count() or 1
    print(f"CPU ms per request ({cores} cores here; CPU taken by other work on the machine lowers every rate):")
    print(f"  no-op        : {cpu_line(noop_cpu, max(1, noop.completed))}")
    print(f"  declaration  : {cpu_line(decl_cpu, max(1, on_kafka))}")
    system = sum(v for k, v in decl_cpu.items() if k != "load generator") / max(1, on_kafka)
    if system:
        print(f"  -> without the load generator, {cores} cores allow about {cores / system:,.0f} declarations/s")
    problems = []
    if on_kafka != accepted:
        problems.append(f"{accepted - on_kafka} accepted declarations are not on Kafka")
    if decl.failed:
        problems.append(f"{decl.failed} declarations refused")
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--declarations", type=int, default=30_000, help="at most this many (count bound)")
    parser.add_argument("--seconds", type=float, default=60, help="at most this long per phase (time bound)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--subjects", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--no-projections", action="store_true",
                        help="RUN_PROJECTIONS=false: the service only takes commands and relays (ledger elsewhere)")
    parser.add_argument("--client", choices=("wrk", "httpx"), default="wrk", help="wrk when installed, else httpx")
    args = parser.parse_args()
    with throwaway_stack("points-bench-intake-") as handle, tempfile.TemporaryDirectory(prefix="points-intake-") as tmp:
        code = asyncio.run(run(args, handle, Path(tmp)))
    raise SystemExit(code)


if __name__ == "__main__":
    main()
