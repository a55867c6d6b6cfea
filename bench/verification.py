"""Verification benchmark: decisions/s through review's HTTP API, one look per request against a page of looks.

    .venv/bin/python bench/verification.py [--communities 4] [--single-seconds 20] [--pages 20] [--page 500]

Starts a throw-away Kafka + PostgreSQL (deploy.testing), runs the review service as a uvicorn process (its
projections and relay in process, as deployed) and seeds its items table directly with waiting items of
``--communities`` communities (the declarations topic's work, not what is measured). Then, in one run,
each community's reviewer (a second recorder; the simulator's pattern: one request at a time per
community, every community at once):
  1. decides items one per request, ``POST /items/{id}/verification``, for ``--single-seconds``;
  2. decides ``--pages`` pages of ``--page`` items each, ``POST /items/verifications``.
Prints decisions/s for each (HTTP answers; and until every event of the phase is published to Kafka), the
ratio, and the load average around each phase (2 shared cores: other work on the machine moves every figure).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy.local import REPO_ROOT, create_database, free_port, settings_env, stop_process, wait_until_ready
from deploy.simulate.client import Client
from deploy.testing import StackHandle, throwaway_stack
from shared.auth import Principal, Role, issue_token
from shared.settings import Settings
from shared.topics import create_topics

MONTH = "2026-11"
NOW = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)
COLUMNS = ["item_id", "community_id", "month", "occurred_on", "subject_id", "category", "dimension", "rule_code",
           "points", "kind", "channel", "description", "entered_by", "declared_by", "recorded_at"]


@dataclass
class Phase:
    name: str
    decided: int = 0
    requests: int = 0
    http_s: float = 0.0
    published_s: float = 0.0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def line(self) -> str:
        return (f"{self.name:<28} {self.decided:>7,} decisions in {self.requests:>6,} requests, "
                f"{self.http_s:6.1f} s: {self.decided / self.http_s:8,.0f} decisions/s (HTTP), "
                f"{self.decided / self.published_s:8,.0f}/s until on Kafka; "
                f"load average {self.load_before[0]:.1f} -> {self.load_after[0]:.1f}")


def start_service(settings: Settings, log: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "services.review.app:build", "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--log-level", "warning",
           "--no-access-log"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=settings_env(settings, HTTP_PORT=str(port)),
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_ready("review", url, proc, log, 90)
    return url, proc


async def seed(pool: asyncpg.Pool, communities: list[str], per_community: int) -> dict[str, list[str]]:
    """Waiting items entered by rec-1 (the reviewer is another recorder), straight into review's tables."""
    ids = {c: [f"{c}-{i:07d}" for i in range(per_community)] for c in communities}
    rows = [(item_id, c, MONTH, dt.date(2026, 11, 1 + i % 28), f"s-{i % 5000:05d}", "resident",
             "community_building", "CB01", 2, "declaration", "oral", "义务劳动", "rec-1", "rec-1", NOW)
            for c in communities for i, item_id in enumerate(ids[c])]
    async with pool.acquire() as conn, conn.transaction():
        await conn.copy_records_to_table("items", records=rows, columns=COLUMNS)
        await conn.copy_records_to_table("review_waiting", records=[(r[0], r[1], r[2]) for r in rows])
    return ids


async def all_published(pool: asyncpg.Pool, within_s: float = 300) -> None:
    deadline = time.monotonic() + within_s
    while await pool.fetchval("select count(*) from events where published_at is null"):
        if time.monotonic() > deadline:
            raise RuntimeError("events still unpublished")
        await asyncio.sleep(0.05)


def ok(status: int, answer: Any, what: str) -> Any:
    if status >= 300:
        raise RuntimeError(f"{what} refused ({status}): {answer}")
    return answer


async def single(client: Client, token: str, items: list[str], seconds: float) -> int:
    """One look per request until ``seconds`` have passed."""
    deadline, n = time.monotonic() + seconds, 0
    for item_id in items:
        if time.monotonic() > deadline:
            break
        ok(*await client.post(f"/items/{item_id}/verification", {"decision": "verified", "note": ""},
                              f"bench-{uuid.uuid4()}", token), item_id)
        n += 1
    return n


async def pages(client: Client, token: str, items: list[str], size: int) -> tuple[int, int]:
    decided = requests = 0
    for start in range(0, len(items), size):
        looks = [{"item_id": i, "decision": "verified", "note": ""} for i in items[start:start + size]]
        answer = ok(*await client.post("/items/verifications", {"decisions": looks}, f"bench-{uuid.uuid4()}", token),
                    "page")
        if answer["refused"]:
            raise RuntimeError(f"looks refused: {answer['outcomes'][:3]}")
        decided, requests = decided + answer["accepted"], requests + 1
    return decided, requests


async def measure(name: str, pool: asyncpg.Pool, jobs: list[Any]) -> tuple[Phase, list[Any]]:
    await all_published(pool)
    phase = Phase(name, load_before=os.getloadavg())
    began = time.perf_counter()
    results = await asyncio.gather(*jobs)
    phase.http_s = time.perf_counter() - began
    await all_published(pool)
    phase.published_s = time.perf_counter() - began
    phase.load_after = os.getloadavg()
    return phase, results


async def run(args: argparse.Namespace, stack: StackHandle, tmp: Path) -> None:
    ns = f"benchv{uuid.uuid4().hex[:6]}"
    settings = Settings(database_url=create_database(stack.dsn, ns), kafka_bootstrap_servers=stack.bootstrap,
                        topic_namespace=ns, topic_partitions=4)
    await create_topics(settings)
    url, proc = start_service(settings, tmp / "review.log")
    communities = [f"c-{k:02d}" for k in range(args.communities)]
    tokens = {c: issue_token(Principal(sub=f"chk-{c}", role=Role.recorder, community=c, name="核查员"))
              for c in communities}
    client = Client(url, len(communities) + 2)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        single_budget = int(args.single_seconds * 200) + 1000  # more than one look per request can reach
        ids = await seed(pool, communities, single_budget + args.pages * args.page)
        print(f"review at {url}; {len(communities)} communities, one reviewer each; log {tmp / 'review.log'}",
              flush=True)
        await asyncio.gather(*(single(client, tokens[c], ids[c][:20], 60) for c in communities))  # warm up
        one, counts = await measure("one look per request", pool, [
            single(client, tokens[c], ids[c][20:single_budget], args.single_seconds) for c in communities])
        one.decided = one.requests = sum(counts)
        print(one.line(), flush=True)
        paged, results = await measure(f"pages of {args.page}", pool, [
            pages(client, tokens[c], ids[c][single_budget:], args.page) for c in communities])
        paged.decided, paged.requests = sum(r[0] for r in results), sum(r[1] for r in results)
        print(paged.line(), flush=True)
        print()
        print(f"decisions/s, one look per request  = {one.decided / one.http_s:,.0f}")
        print(f"decisions/s, pages of {args.page:<13} = {paged.decided / paged.http_s:,.0f}")
        print(f"ratio (HTTP)                       = {paged.decided / paged.http_s / (one.decided / one.http_s):,.1f}")
        print(f"ratio (until on Kafka)             = "
              f"{paged.decided / paged.published_s / (one.decided / one.published_s):,.1f}")
        print(f"cores here: {os.cpu_count()}; load average now {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    finally:
        await pool.close()
        await client.close()
        stop_process(proc, timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--communities", type=int, default=4, help="each with its own reviewer, all at once")
    parser.add_argument("--single-seconds", type=float, default=20, help="how long one look per request runs")
    parser.add_argument("--pages", type=int, default=20, help="pages per community")
    parser.add_argument("--page", type=int, default=500, help="looks per page (review's limit: 500)")
    args = parser.parse_args()
    with throwaway_stack("points-bench-verification-") as handle, \
            tempfile.TemporaryDirectory(prefix="points-verification-") as tmp:
        asyncio.run(run(args, handle, Path(tmp)))


if __name__ == "__main__":
    main()
