"""Exchange benchmark: redemptions per second through the HTTP API, every event on Kafka.

Starts Kafka + PostgreSQL (deploy.testing), stand-in declarations and review outboxes that
register N residents and certify a month of points for each (not timed), runs the exchange
service as a uvicorn process (BENCH_NOOP=1, so the same server also answers ``POST /bench/noop``
with the same body, auth and idempotency header), lists one item with enough donated stock, then
on loopback with wrk:
  1. ``POST /bench/noop``: the server's ceiling for a signed-in JSON POST;
  2. ``POST /redemptions`` (a fresh Idempotency-Key each, residents in turn), bounded in count and time;
  3. waits until every Redeemed event is a record on the exchange topic.
Prints redemptions/s (HTTP and end to end to Kafka), p50/p99 latency, the ratio to the no-op rate.

Usage: .venv/bin/python bench/exchange.py [--redemptions 20000] [--seconds 30] [--connections 32] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from intake import CpuMeter, Load, all_published, cpu_line, fmt

from deploy.local import REPO_ROOT, create_database, free_port, settings_env, stop_process, wait_until_ready
from deploy.testing import StackHandle, throwaway_stack
from services.exchange.domain.member_code import member_code
from shared import store as event_store
from shared.auth import Principal, Role, issue_token
from shared.envelope import source_for
from shared.events import load_catalogue
from shared.events.declarations import CommunityRegistered, SubjectRegistered
from shared.events.review import MonthCertified, PointsAwarded, certification_digest
from shared.kafka import consumer_config
from shared.projection import partitions_of
from shared.relay import Relay
from shared.settings import Settings
from shared.store import EventStore, Recorded
from shared.topics import DECLARATIONS, EXCHANGE, REVIEW, create_topics

COMMUNITY = "c-bench"
AIM = 500.0  # redemptions per second (issue 12; moonshot 2,000)
PRICE, POINTS = 1, 1_000_000  # every resident can afford every request of the run

WRK_SCRIPT = r"""
local threads, next_id = {}, 0
function setup(thread) thread:set("tid", next_id); next_id = next_id + 1; table.insert(threads, thread) end
function init(args)
  path, auth = args[1], "Bearer " .. args[2]
  codes = {}
  for s in string.gmatch(args[3], "[^,]+") do table.insert(codes, s) end
  limit, prefix = tonumber(args[4]), args[5] .. "-" .. tid .. "-"
  sent, answered, failed, first = 0, 0, 0, ""
end
function request()
  sent = sent + 1
  local body = string.format('{"member_code":"%s","lines":[{"item_id":"rice","quantity":1,"price":1}],'
    .. '"counter":"bench-%d"}', codes[(sent * 7 + tid * 13) % #codes + 1], tid)
  return wrk.format("POST", path, {["Content-Type"] = "application/json", ["Authorization"] = auth,
    ["Idempotency-Key"] = prefix .. sent}, body)
end
function response(status, headers, body)
  answered = answered + 1
  if status >= 300 then
    failed = failed + 1
    if first == "" then first = status .. " " .. string.sub(body, 1, 200) end
  end
  if answered == limit then io.write("WRK_LIMIT\n"); io.flush(); wrk.thread:stop() end
end
function done(summary, latency, requests)
  local failed_all, first_all = 0, ""
  for _, t in ipairs(threads) do
    failed_all = failed_all + t:get("failed"); if first_all == "" then first_all = t:get("first") end
  end
  io.write(string.format("WRK %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), failed_all))
  io.write("WRK_FIRST " .. first_all .. "\n")
end
"""


async def drive(url: str, path: str, token: str, codes: list[str], connections: int, count: int, seconds: float,
                run_id: str, tmp: Path) -> Load:
    script = tmp / "exchange.lua"
    script.write_text(WRK_SCRIPT)
    threads = min(os.cpu_count() or 1, connections)
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{int(seconds)}s", "--timeout", "10s",
           "-s", str(script), url, "--", path, token, ",".join(codes), str(max(1, count // threads)),
           f"{run_id}-{uuid.uuid4().hex[:8]}"]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    chunks, at_limit = [], 0
    while line := await proc.stdout.readline():
        chunks.append(line)
        if line.startswith(b"WRK_LIMIT"):
            at_limit += 1
            if at_limit == threads:
                proc.send_signal(signal.SIGINT)
    out, err = b"".join(chunks).decode(errors="replace"), (await proc.stderr.read()).decode(errors="replace")
    await proc.wait()
    numbers = next((ln.split()[1:] for ln in out.splitlines() if ln.startswith("WRK ")), None)
    if numbers is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {out[-2000:]} {err[-2000:]}")
    requests, duration_us, p50_us, p99_us, failed = (int(n) for n in numbers)
    first = next((ln.removeprefix("WRK_FIRST ") for ln in out.splitlines() if ln.startswith("WRK_FIRST ")), "")
    return Load(requests, failed, duration_us / 1e6, p50_us / 1e3, p99_us / 1e3, first.strip())


async def feed(settings: Settings, admin_dsn: str, service: str, streams: list[tuple[str, str, list]]) -> None:  # type: ignore[type-arg]
    """Play another service: its own database and outbox, relayed onto its topic."""
    dsn = create_database(admin_dsn, f"{settings.topic_namespace}_{service}")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    topic = {"declarations": DECLARATIONS, "review": REVIEW}[service]
    store = EventStore(source_for(service), topic.name(settings))
    relay = Relay(pool, settings.model_copy(update={"database_url": dsn}), source_for(service))
    try:
        async with pool.acquire() as conn:
            await event_store.migrate(conn)
            async with conn.transaction():
                for stream, key, events in streams:
                    await store.append(conn, stream, 0, events, key=key, recorded=Recorded(
                        actor="bench", time=dt.datetime.now(dt.UTC), correlation_id=uuid.uuid4()))
            while await relay.publish_batch(conn):
                pass
    finally:
        await relay.close()
        await pool.close()


async def exchange_records(settings: Settings) -> int:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(**consumer_config(settings), group_id=None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [EXCHANGE.name(settings)])
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


def start_service(settings: Settings, workers: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The exchange service as uvicorn runs it in production (uvloop, httptools, no access log)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "services.exchange.app:build", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers), "--loop", "uvloop", "--http", "httptools",
         "--log-level", "warning", "--no-access-log"],
        cwd=REPO_ROOT, env=settings_env(settings, BENCH_NOOP="1", HTTP_PORT=str(port)),
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_ready("exchange", url, proc, log, 90)
    return proc, url


def stock_the_shelf(url: str, clerk: str, ns: str) -> None:
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {clerk}"}, timeout=30) as http:
        for path, body in (("/catalogue/items", {"item_id": "rice", "community_id": COMMUNITY, "name": "大米",
                                                 "unit": "袋", "price": PRICE}),
                           ("/donations", {"item_id": "rice", "donor": "压测爱心企业", "quantity": 100_000,
                                           "received_on": dt.date.today().isoformat()})):
            r = http.post(path, json=body, headers={"idempotency-key": f"seed-{path}-{ns}"})
            assert r.status_code == 201, r.text


async def run(args: argparse.Namespace, stack: StackHandle, tmp: Path) -> int:
    ns = f"bench{uuid.uuid4().hex[:6]}"
    settings = Settings(database_url=create_database(stack.dsn, ns), kafka_bootstrap_servers=stack.bootstrap,
                        topic_namespace=ns, topic_partitions=args.partitions)
    await create_topics(settings)
    ids = [f"s-{i:05d}" for i in range(args.residents)]
    await feed(settings, stack.dsn, "declarations", [(f"community-{COMMUNITY}", COMMUNITY, [
        CommunityRegistered(community_id=COMMUNITY, name="压测社区")])] + [(f"subject-{s}", s, [SubjectRegistered(
            subject_id=s, community_id=COMMUNITY, kind="person", name=f"居民{s}", categories=("resident",),
            registered_on=dt.date(2025, 1, 1))]) for s in ids])
    awards = [PointsAwarded(item_id=f"i-{s}", community_id=COMMUNITY, month="2026-11", subject_id=s,
                            category="resident", dimension="community_building", rule_code="CB01", points=POINTS)
              for s in ids]
    await feed(settings, stack.dsn, "review", [(f"community-{COMMUNITY}", COMMUNITY, [*awards, MonthCertified(
        community_id=COMMUNITY, month="2026-11", count=len(awards), total=POINTS * len(awards),
        digest=certification_digest(awards), signed_by=("a", "b"), certified_at=dt.datetime.now(dt.UTC))])])

    proc, url = start_service(settings, args.workers, tmp / "service.log")
    try:
        clerk = issue_token(Principal(sub="bench-clerk", role=Role.clerk, community=COMMUNITY, name="压测收银员"))
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
        try:
            deadline = time.monotonic() + 120
            while await pool.fetchval("select count(*) from balances where awarded > 0") < len(ids):
                if time.monotonic() > deadline:
                    raise RuntimeError("the residents' certified points never reached the exchange service")
                await asyncio.sleep(0.2)
            stock_the_shelf(url, clerk, ns)
            codes = [member_code(s) for s in ids]
            common = dict(url=url, token=clerk, codes=codes, connections=args.connections, tmp=tmp)
            await drive(path="/bench/noop", count=2000, seconds=10, run_id="warm", **common)  # type: ignore[arg-type]
            meter = CpuMeter({"service": proc.pid, "postgres": stack.postgres.pid if stack.postgres else None,
                              "kafka": stack.kafka.pid if stack.kafka else None})
            meter.begin()
            noop = await drive(path="/bench/noop", count=args.redemptions, seconds=args.seconds, run_id="noop",
                               **common)  # type: ignore[arg-type]
            noop_cpu = meter.spent()
            print(fmt(noop, "no-op POST"), flush=True)
            await drive(path="/redemptions", count=1000, seconds=10, run_id="warm", **common)  # type: ignore[arg-type]
            await all_published(pool)
            before_db = await pool.fetchval("select count(*) from events")
            before_kafka = await exchange_records(settings)
            meter.begin()
            began = time.perf_counter()
            load = await drive(path="/redemptions", count=args.redemptions, seconds=args.seconds, run_id="redeem",
                               **common)  # type: ignore[arg-type]
            await asyncio.sleep(0.5)
            accepted = await pool.fetchval("select count(*) from events") - before_db
            await all_published(pool)
            landed = time.perf_counter()
            on_kafka = await exchange_records(settings) - before_kafka
            spent = meter.spent()
            negative = await pool.fetchval(
                "select count(*) from balances where awarded + corrected - redeemed + returned < 0")
            oversold = await pool.fetchval("select count(*) from stock where received - redeemed + returned < 0")
        finally:
            await pool.close()
    finally:
        stop_process(proc, timeout=30)
    e2e = on_kafka / (landed - began)
    print(fmt(load, "POST /redemptions"))
    print(f"accepted (Redeemed events in the store): {accepted:,}; on Kafka: {on_kafka:,}")
    print()
    print(f"redemptions/s, HTTP 201         = {load.rate:,.0f}")
    print(f"redemptions/s, end to end Kafka = {e2e:,.0f}   (aim ≥ {AIM:,.0f})")
    print(f"p50 / p99 latency               = {load.p50_ms:.1f} ms / {load.p99_ms:.1f} ms")
    print(f"ratio to no-op (HTTP)           = {load.rate / noop.rate:.2f}")
    print(f"CPU ms per request: no-op {cpu_line(noop_cpu, max(1, noop.completed))}")
    print(f"                    redemption {cpu_line(spent, max(1, on_kafka))}")
    lost = accepted - on_kafka
    problems = [p for p in (f"{lost} accepted redemptions are not on Kafka" if lost else "",
                            f"{load.failed} redemptions refused" if load.failed else "",
                            f"{negative} negative balances" if negative else "",
                            f"{oversold} oversold items" if oversold else "") if p]
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redemptions", type=int, default=20_000, help="at most this many (count bound)")
    parser.add_argument("--seconds", type=float, default=30, help="at most this long per phase (time bound)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--residents", type=int, default=2000)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (counters share the database)")
    args = parser.parse_args()
    load_catalogue()
    os.environ.setdefault("TOKEN_SECRET", "bench-" + uuid.uuid4().hex * 2)
    with throwaway_stack("points-bench-exchange-") as handle, tempfile.TemporaryDirectory(prefix="points-exch-") as tmp:
        code = asyncio.run(run(args, handle, Path(tmp)))
    raise SystemExit(code)


if __name__ == "__main__":
    main()
