"""A projection scaled out: two instances (processes) in one consumer group share the partitions;
one is killed with -9 mid-stream and the other takes its partitions over, the effect still exactly
once and in order (each event one row, each stream's rows in version order)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import pytest

from deploy.local import settings_env
from shared.envelope import source_for
from shared.relay import Relay
from shared.settings import Settings
from tests.integration.test_runner import BURST, STREAMS, append_burst, end_offsets, stored
from tests.integration.test_spine import given_a_store, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SPEC = "tests.integration.test_runner:SlowTickLog"


def instance(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = settings_env(settings) | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "shared.projection", "run", SPEC], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"), start_new_session=True)


def assignments(log: Path) -> list[list[str]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        with_json = line[line.find("{"):] if "{" in line else ""
        try:
            entry = json.loads(with_json)
        except ValueError:
            continue
        if entry.get("event") == "projection.assigned":
            out.append(entry["partitions"])
    return out


async def test_given_two_instances_when_one_is_killed_mid_stream_then_the_other_finishes_exactly_once(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    store = await given_a_store(pool, settings)
    stop_relay = asyncio.Event()
    relay = asyncio.create_task(Relay(pool, settings, source_for("declarations", settings)).run(stop_relay))
    logs = [Path(tempfile.mkstemp(prefix=f"instance-{n}-", suffix=".log")[1]) for n in "ab"]
    a, b = instance(settings, logs[0]), instance(settings, logs[1])
    try:
        async def both_assigned() -> bool:
            got = [assignments(log) for log in logs]
            if not all(g and g[-1] for g in got):
                return False
            a_share, b_share = set(got[0][-1]), set(got[1][-1])  # after the rebalance: disjoint, all held
            return not a_share & b_share and len(a_share | b_share) == settings.topic_partitions
        await wait_for(both_assigned, 90, "two instances sharing the partitions")
        shares = [assignments(log)[-1] for log in logs]
        assert not set(shares[0]) & set(shares[1]), shares

        for burst in range(3):
            await append_burst(pool, store, burst)
        await wait_for(lambda: _rows_over(pool, 1500), 60, "both instances under way")
        killed_at = time.monotonic()
        os.killpg(a.pid, signal.SIGKILL)  # mid-stream: its open transaction rolls back, its offsets stay stored
        a.wait(10)
        for burst in range(3, 5):
            await append_burst(pool, store, burst)
        await wait_for(lambda: _b_has_all(logs[1], settings.topic_partitions), 90, "the survivor taking over")
        took_over = time.monotonic() - killed_at
        ends = await end_offsets(settings)
        await wait_for(lambda: _caught_up(pool, ends), 90, "the survivor catching up")
        caught_up = time.monotonic() - killed_at
        await asyncio.sleep(0.5)  # anything applied twice would show now
    finally:
        for p in (a, b):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(20)
        stop_relay.set()
        await relay

    total = 5 * STREAMS * BURST
    assert await pool.fetchval("select count(*) from ticks") == total
    assert await pool.fetchval("select count(distinct event_id) from ticks") == total
    assert await pool.fetchval("select count(*) from ticks where seq <> applied or n <> seq") == 0
    print(f"\ninstance a held {len(shares[0])} partitions, b {len(shares[1])}; a killed with -9 mid-stream; "
          f"b held all {settings.topic_partitions} {took_over:.1f} s later and had applied the rest "
          f"{caught_up:.1f} s after the kill: {total:,} events, each once, every stream in order")
    for log in logs:
        log.unlink()


async def _rows_over(pool: asyncpg.Pool, n: int) -> bool:
    return bool(await pool.fetchval("select count(*) from ticks") > n)


async def _b_has_all(log: Path, partitions: int) -> bool:
    got = assignments(log)
    return bool(got) and len(got[-1]) == partitions


async def _caught_up(pool: asyncpg.Pool, ends: dict[tuple[str, int], int]) -> bool:
    at = await stored(pool, "ticklog")
    return all(at.get(tp, 0) >= end for tp, end in ends.items())
