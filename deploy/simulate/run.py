"""One simulated month of a county, phase by phase (``python -m deploy.simulate`` drives it)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from deploy.simulate import county as county_mod
from deploy.simulate import staff
from deploy.simulate.client import Client
from deploy.simulate.figures import chains, figures, rankings
from deploy.simulate.load import Tally, Tokens
from deploy.simulate.plan import Month, Plan
from deploy.simulate.plan import county as plan_county
from deploy.simulate.plan import sites as plan_sites
from deploy.simulate.watch import CpuMeter, Watch, cpu_between, end_offsets, postmaster
from deploy.testing import StackHandle
from shared.topics import RANKING, REVIEW

PHASES = ("start", "roster", "intake", "verification", "certification", "rankings", "redemptions", "chains")
PATIENCE_S = 7200  # how long a phase may wait for the county to catch up before the run fails


@dataclass
class Phase:
    name: str
    total: int = 0  # items (or requests) it will make
    tally: Tally = field(default_factory=Tally)
    began: float = 0.0
    ended: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.began if self.began else 0.0


@dataclass
class Result:
    plan: Plan
    month: str = ""
    phases: list[Phase] = field(default_factory=lambda: [Phase(n) for n in PHASES])
    figures: dict[str, Any] = field(default_factory=dict)
    watch: Watch | None = None

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)


async def simulate(handle: StackHandle, result: Result, logs: Path, *, partitions: int, sample_s: float,
                   verify_chains: bool, on_update: Callable[[Result], None] | None = None) -> Result:
    """Run ``result.plan``, filling in ``result`` as it goes (what it holds stays when a phase fails)."""
    plan = result.plan
    started = time.monotonic()
    county = await county_mod.start(handle, plan_sites(plan.communities), logs, partitions)
    tz = ZoneInfo(county.settings.timezone)
    month = Month.before(dt.datetime.now(tz).date())
    result.month = month.name
    run_id = uuid.uuid4().hex[:8]
    communities = plan_county(plan, month, run_id)
    watch = result.watch = Watch(county)
    await watch.open()
    stop = asyncio.Event()
    background = [asyncio.create_task(watch.run(stop, sample_s)), asyncio.create_task(_tick(result, on_update, stop))]
    cpu_seconds = CpuMeter(county, handle.kafka.pid if handle.kafka else None,
                           handle.postgres.pid if handle.postgres else await postmaster(handle.dsn))
    cpu_at = cpu_seconds()
    start = result.phase("start")
    start.began, start.ended = started, time.monotonic()
    tokens = Tokens()
    sites = {c.id: Client(county.site_procs[c.site.name].url, plan.connections + 2) for c in communities}
    review = Client(county.services["review"].url, plan.communities * plan.verify_concurrency + 4)
    exchange = Client(county.services["exchange"].url, plan.communities * plan.counters + 4)

    async def phase(name: str, *work: Awaitable[Any]) -> list[Any]:
        nonlocal cpu_at
        p = result.phase(name)
        watch.phase = name
        p.began = time.monotonic()
        try:
            return list(await asyncio.gather(*work))
        finally:
            p.ended = time.monotonic()
            now_cpu = cpu_seconds()
            p.cpu = cpu_between(cpu_at, now_cpu)
            cpu_at = now_cpu

    try:
        # roster: every community and its subjects at its own site; the shelves of every supermarket
        roster = result.phase("roster")
        roster.total = sum(len(c.subjects) for c in communities)
        today = dt.datetime.now(tz).date()
        await phase("roster", *(staff.register(c, sites[c.id], tokens, run_id, roster.tally) for c in communities),
                    *(staff.stock_the_shelves(c, exchange, tokens, run_id, today) for c in communities))
        await watch.settled(lag_of=["review/", "ranking/", "exchange/", "sites/"], outboxes=["sites", "exchange"],
                            patience_s=PATIENCE_S)
        # intake: the month through every channel at every site, until review holds every item
        intake = result.phase("intake")
        intake.total = sum(c.items for c in communities)
        intake.notes["requests"] = sum(len(c.requests) + 3 * len(c.needs) for c in communities)

        async def month_intake() -> None:
            await asyncio.gather(*(staff.intake(c, sites[c.id], tokens, month, plan.connections, intake.tally)
                                   for c in communities))
            intake.notes["http_done_s"] = time.monotonic() - intake.began
            await watch.settled(outboxes=["sites"], patience_s=PATIENCE_S)
            intake.notes["on_kafka_s"] = time.monotonic() - intake.began
            await watch.settled(lag_of=["review/review_items"], patience_s=PATIENCE_S)
            intake.notes["in_review_s"] = time.monotonic() - intake.began

        await phase("intake", month_intake())
        intake.notes["in_review"] = await _count(county.services["review"].dsn, "select count(*) from items")
        # verification: a second recorder decides every item; the board catches up
        verification = result.phase("verification")
        verification.total = intake.notes["in_review"]

        async def verify_all() -> list[Counter[str]]:
            decided = await asyncio.gather(*(staff.verify_items(c, review, tokens, month, run_id,
                                                                plan.verify_concurrency, verification.tally)
                                             for c in communities))
            await watch.settled(lag_of=["review/"], outboxes=["review"], patience_s=PATIENCE_S)
            return list(decided)

        decided: list[Counter[str]] = (await phase("verification", verify_all()))[0]
        verification.notes |= dict(sum(decided, Counter()))
        # certification: every community's leading group signs; then the rankings follow
        certification = result.phase("certification")
        certification.total = len(communities)
        review_from = await end_offsets(county.settings, REVIEW.name(county.settings))
        ranking_from = await end_offsets(county.settings, RANKING.name(county.settings))
        signed = await phase("certification", *(staff.certify(c, review, tokens, month, run_id, d["verified"])
                                                for c, d in zip(communities, decided, strict=True)))
        certification.tally.done = len(signed)
        async def ranked() -> dict[str, Any]:
            """Until every community and the county were ranked after the certifications, and all is said
            (the ranking service may have read everything and still be ranking what it put off)."""
            deadline = time.monotonic() + PATIENCE_S
            while True:
                await watch.settled(lag_of=["ranking/"], outboxes=["review", "ranking"], quiet_s=3,
                                    patience_s=PATIENCE_S)
                got = await rankings(county.settings, review_from, ranking_from, max(signed),
                                     [c.id for c in communities])
                if got["communities_ranked"] == len(communities) and got["county_ranked"]:
                    return got
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not every ranking was said within {PATIENCE_S:.0f} s: {got}")
                await asyncio.sleep(1)

        result.phase("rankings").notes |= (await phase("rankings", ranked()))[0]
        # redemptions at several counters of every community's supermarket, once the awards count there
        redemptions = result.phase("redemptions")
        redemptions.total = plan.redemptions * len(communities)

        async def shopping() -> None:
            await watch.settled(lag_of=["exchange/"], patience_s=PATIENCE_S)
            redemptions.notes["awards_in_exchange_s"] = time.monotonic() - redemptions.began
            began = time.monotonic()
            await asyncio.gather(*(staff.redeem(c, exchange, tokens, plan.counters, plan.redemptions, run_id,
                                                redemptions.tally) for c in communities))
            redemptions.notes["counter_s"] = time.monotonic() - began
            await watch.settled(outboxes=["exchange"], patience_s=PATIENCE_S)

        await phase("redemptions", shopping())
        if verify_chains:  # every site's chain against the declarations topic, read once for all of them
            result.phase("chains").total = len(county.sites)
            result.figures["chains"] = (await phase("chains", chains(county)))[0]
            result.phase("chains").tally.done = len(result.figures["chains"])
    finally:
        stop.set()
        for task in background:
            with contextlib.suppress(Exception):
                await task
        for client in [*sites.values(), review, exchange]:
            await client.close()
        await watch.close()
        county_mod.stop(county)
        result.figures |= figures(result)
    return result


async def _tick(result: Result, on_update: Callable[[Result], None] | None, stop: asyncio.Event) -> None:
    while on_update is not None and not stop.is_set():
        on_update(result)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def _count(dsn: str, sql: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()
