"""Relay order: the candidate mechanisms on one stress load (PostgreSQL only, no Kafka needed).

30 writers append to 4 hot streams; each transaction first claims an idempotency key (so it
holds an xid from its start, as every command does), works 0–5 ms ("load, decide"), then
appends the stream's next version. One long transaction claims, works 3 s, then appends. A
relay "publishes" (records the time) while the writers run. Candidates:
  lock         appends take a per-log advisory lock right before positions are assigned (until
               commit), the relay pages by position: what shared.store does
  xid-prefix   xid8 column; unpublished rows in position order, published up to the first row
               whose xid is not below pg_snapshot_xmin (then marked published)
  xid-plain    the plain horizon: every unpublished row whose xid is below pg_snapshot_xmin,
               in position order (then marked published)
Prints per candidate: writer commits/s, per-stream order violations, the longest time a
committed row waited while later-committed rows were published, the longest and p99 commit →
publish latency.

Usage: .venv/bin/python bench/relay_order.py [--seconds 8] [--writers 30] [--rounds 2]

Measured 2026-12-05 (2 rounds, 2 cores shared with other test runs); the choice is explained in
shared/store.py:
  lock        118–158 commits/s, 0 violations, longest wait 0.011–0.015 s, max 0.045–0.082 s
  xid-prefix  304–536 commits/s, 0 violations, longest wait 0.12–1.68 s,  max 3.04–3.07 s
  xid-plain   263–665 commits/s, 4–47 violations, longest wait 0.05–3.06 s, max 3.06–3.07 s
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy.local import create_database
from deploy.testing import throwaway_stack

SCHEMA = """
create table trial (
    position bigserial primary key,
    stream   text not null,
    version  integer not null,
    txid     xid8 not null default pg_current_xact_id(),
    published boolean not null default false,
    unique (stream, version)
);
create index trial_unpublished on trial (position) where not published;
create table claims (k text primary key);
"""
HOT = 4


async def writer(pool: asyncpg.Pool, mechanism: str, stop: asyncio.Event, committed: dict[tuple[str, int], float],
                 work_s: tuple[float, float] = (0.0, 0.005), stream: str | None = None, once: bool = False) -> int:
    done = 0
    while not stop.is_set():
        s = stream or f"hot-{random.randrange(HOT)}"
        async with pool.acquire() as conn:
            try:
                async with conn.transaction():
                    await conn.execute("insert into claims values ($1)", uuid.uuid4().hex)  # takes the xid
                    await asyncio.sleep(random.uniform(*work_s))
                    version = await conn.fetchval("select coalesce(max(version), 0) from trial where stream = $1", s)
                    if mechanism == "lock":
                        await conn.execute("select pg_advisory_xact_lock(7420002)")
                    await conn.execute("insert into trial (stream, version) values ($1, $2)", s, version + 1)
            except asyncpg.UniqueViolationError:
                continue
            committed[(s, version + 1)] = time.monotonic()
            done += 1
            if once:
                return done
    return done


async def relay(pool: asyncpg.Pool, mechanism: str, stop: asyncio.Event,
                published: list[tuple[str, int, float]]) -> None:
    cursor = 0
    async with pool.acquire() as conn:
        while True:
            finishing = stop.is_set()
            if mechanism == "lock":
                rows = await conn.fetch("select position, stream, version from trial where position > $1 "
                                        "order by position limit 1000", cursor)
                if rows:
                    cursor = rows[-1]["position"]
            else:
                rows = await conn.fetch(
                    """select position, stream, version, txid < pg_snapshot_xmin(pg_current_snapshot()) as safe
                       from trial where not published order by position limit 1000""")
                if mechanism == "xid-prefix":
                    cut = next((i for i, r in enumerate(rows) if not r["safe"]), len(rows))
                    rows = rows[:cut]
                else:
                    rows = [r for r in rows if r["safe"]]
                if rows:
                    await conn.execute("update trial set published = true where position = any($1::bigint[])",
                                       [r["position"] for r in rows])
            now = time.monotonic()
            published += [(r["stream"], r["version"], now) for r in rows]
            if not rows:
                if finishing:
                    return
                await asyncio.sleep(0.01)


def figures(committed: dict[tuple[str, int], float], published: list[tuple[str, int, float]]) -> dict[str, float]:
    last: dict[str, int] = {}
    violations = 0
    for stream, version, _ in published:
        if version != last.get(stream, 0) + 1:
            violations += 1
        last[stream] = max(version, last.get(stream, 0))
    at = {(s, v): t for s, v, t in published}
    rows = sorted((committed[k], at[k]) for k in committed if k in at)  # (commit, publish) by commit time
    held, first_later = 0.0, float("inf")
    for commit, publish in reversed(rows):
        if first_later < publish:
            held = max(held, publish - commit)
        first_later = min(first_later, publish)
    latencies = sorted(max(0.0, p - c) for c, p in rows)
    return {"violations": violations, "held": held, "max_latency": latencies[-1] if latencies else 0.0,
            "p99_latency": latencies[int(len(latencies) * 0.99)] if latencies else 0.0}


async def trial(dsn: str, mechanism: str, writers: int, seconds: float) -> None:
    db = create_database(dsn, f"order_{mechanism.replace('-', '_')}_{uuid.uuid4().hex[:6]}")
    pool = await asyncpg.create_pool(db, min_size=writers + 2, max_size=writers + 3)
    await pool.execute(SCHEMA)
    committed: dict[tuple[str, int], float] = {}
    published: list[tuple[str, int, float]] = []
    stop, relay_stop = asyncio.Event(), asyncio.Event()
    relaying = asyncio.create_task(relay(pool, mechanism, relay_stop, published))
    began = time.monotonic()
    tasks = [asyncio.create_task(writer(pool, mechanism, stop, committed)) for _ in range(writers)]
    await asyncio.sleep(1.0)
    long = asyncio.create_task(writer(pool, mechanism, stop, committed, work_s=(3.0, 3.0), stream="long", once=True))
    await asyncio.sleep(seconds - 1.0)
    stop.set()
    done = sum(await asyncio.gather(*tasks)) + await long
    elapsed = time.monotonic() - began
    relay_stop.set()
    await relaying
    await pool.close()
    f = figures(committed, published)
    print(f"{mechanism:<11} writers {done / elapsed:>7,.0f} commits/s  order violations {f['violations']:>4.0f}  "
          f"longest wait while later rows published {f['held']:6.3f} s  commit→publish max {f['max_latency']:6.3f} s"
          f"  p99 {f['p99_latency']:6.3f} s", flush=True)


async def run(dsn: str, writers: int, seconds: float, rounds: int) -> None:
    for r in range(rounds):
        print(f"round {r + 1}", flush=True)
        for mechanism in ("lock", "xid-prefix", "xid-plain"):
            await trial(dsn, mechanism, writers, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--writers", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with throwaway_stack("points-order-") as handle:
        uvloop.run(run(handle.dsn, args.writers, args.seconds, args.rounds))


if __name__ == "__main__":
    main()
