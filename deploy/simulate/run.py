"""One simulated month of a county, phase by phase (``python -m deploy.simulate`` drives it)."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from deploy.simulate import county as county_mod
from deploy.simulate import month as m
from deploy.simulate.client import Client
from deploy.simulate.watch import Watch, cpu_between, cpu_seconds, end_offsets, record_times
from deploy.testing import StackHandle
from shared.envelope import site_source
from shared.events.ranking import RankingChanged
from shared.events.review import MonthCertified
from shared.topics import DECLARATIONS, RANKING, REVIEW
from shared.verify import verify


@dataclass
class Phase:
    name: str
    total: int = 0  # requests (or items) it will make
    tally: m.Tally = field(default_factory=m.Tally)
    began: float = 0.0
    ended: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.began if self.began else 0.0


@dataclass
class Result:
    plan: m.Plan
    month: str = ""
    phases: list[Phase] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    watch: Watch | None = None
    logs: Path | None = None

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)


PHASES = ("start", "roster", "intake", "verification", "certification", "rankings", "redemptions")


async def simulate(handle: StackHandle, plan: m.Plan, logs: Path, *, partitions: int, sample_s: float,
                   verify_chains: bool, on_update: Callable[[Result], None] | None = None) -> Result:
    result = Result(plan, phases=[Phase(n) for n in PHASES], logs=logs)
    kafka_pids = [pid for pid in [getattr(handle.kafka, "pid", None)] if pid]
    postgres_pid = getattr(handle.postgres, "pid", None)
    start = result.phase("start")
    start.began = time.monotonic()
    sites = county_mod.plan_sites(plan.communities)
    county = await county_mod.start(handle, sites, logs, partitions)
    run_id = uuid.uuid4().hex[:8]
    watch = result.watch = Watch(county)
    await watch.open()
    stop = asyncio.Event()
    sampler = asyncio.create_task(watch.run(stop, sample_s))
    ticker = asyncio.create_task(_tick(result, on_update, stop))
    cpu_at = cpu_seconds(county, kafka_pids, postgres_pid)
    start.ended = time.monotonic()
    tokens = m.Tokens()
    clients = {s.name: Client(county.site_procs[s.name].url, "", plan.connections + 2) for s in sites}
    review = Client(county.services["review"].url, "", plan.communities * plan.verify_concurrency + 4)
    exchange = Client(county.services["exchange"].url, "", plan.communities * plan.counters + 4)
    communities = m.plan_month(plan, sites, {s.name: county.site_procs[s.name].url for s in sites}, run_id,
                               county.settings.timezone)
    month, _, _ = m.last_month(county.settings.timezone)
    result.month = month

    async def phase(name: str, work: Awaitable[Any]) -> Any:
        nonlocal cpu_at
        p = result.phase(name)
        watch.phase = name
        p.began = time.monotonic()
        try:
            return await work
        finally:
            p.ended = time.monotonic()
            now_cpu = cpu_seconds(county, kafka_pids, postgres_pid)
            p.cpu = cpu_between(cpu_at, now_cpu)
            cpu_at = now_cpu

    try:
        county_wide = ["review/", "ranking/", "exchange/", "sites/"]
        # roster: every community and its subjects at its own site; the shelves of every supermarket
        roster = result.phase("roster")
        roster.total = sum(len(c.subjects) for c in communities)
        await phase("roster", _all(
            *(m.register(c, clients[c.site.name], tokens, run_id, roster.tally) for c in communities),
            *(m.stock_the_shelves(c, exchange, tokens, run_id) for c in communities),
            watch.settled(lag_of=county_wide, outboxes=["sites", "exchange"], patience_s=7200)))
        # intake: the month through every channel at every site, until review holds every item
        intake = result.phase("intake")
        intake.total = sum(c.items for c in communities)
        intake.notes["requests"] = sum(len(c.requests) + 3 * len(c.needs) for c in communities)

        async def month_intake() -> None:
            await _all(*(m.intake(c, clients[c.site.name], tokens, plan.connections, intake.tally)
                         for c in communities))
            intake.notes["http_done_s"] = time.monotonic() - intake.began
            await watch.settled(outboxes=["sites"], patience_s=7200)
            intake.notes["on_kafka_s"] = time.monotonic() - intake.began
            await watch.settled(lag_of=["review/review_items"], patience_s=7200)
            intake.notes["in_review_s"] = time.monotonic() - intake.began

        await phase("intake", month_intake())
        intake.notes["in_review"] = await _count(county.services["review"].dsn, "select count(*) from items")
        # verification: a recorder decides every item; the board catches up
        verification = result.phase("verification")
        verification.total = intake.notes["in_review"]
        decided: list[Counter[str]] = await phase("verification", _verify_all(
            communities, review, tokens, month, run_id, plan, verification.tally, watch))
        verification.notes["decisions"] = dict(sum(decided, Counter()))
        # certification: every community's leading group signs; then the rankings follow
        certification = result.phase("certification")
        certification.total = len(communities)
        review_from = await end_offsets(county.settings, REVIEW.name(county.settings))
        ranking_from = await end_offsets(county.settings, RANKING.name(county.settings))
        signed: list[float] = await phase("certification", _all(*(
            m.certify(c, review, tokens, month, run_id, d["verified"]) for c, d in zip(communities, decided,
                                                                                     strict=True))))
        certification.tally.done = len(signed)
        last_signed = max(signed)
        await phase("rankings", watch.settled(lag_of=["ranking/"], outboxes=["review", "ranking"], quiet_s=3,
                                              patience_s=7200))
        await _rankings(result, county.settings, review_from, ranking_from, last_signed, communities, month)
        # redemptions at several counters of every community's supermarket, once the awards count there
        redemptions = result.phase("redemptions")
        redemptions.total = plan.redemptions * len(communities)

        async def shopping() -> None:
            await watch.settled(lag_of=["exchange/"], patience_s=7200)
            redemptions.notes["awards_in_exchange_s"] = time.monotonic() - redemptions.began
            began = time.monotonic()
            await _all(*(m.redeem(c, exchange, tokens, plan.counters, plan.redemptions, run_id, redemptions.tally)
                         for c in communities))
            redemptions.notes["counter_s"] = time.monotonic() - began
            await watch.settled(outboxes=["exchange"], patience_s=600)

        await phase("redemptions", shopping())
        if verify_chains:
            result.figures["chains"] = await _chains(county, sites)
    finally:
        stop.set()
        for task in (sampler, ticker):
            with contextlib.suppress(Exception):
                await task
        for client in [*clients.values(), review, exchange]:
            await client.close()
        await watch.close()
        county_mod.stop(county)
    _figures(result)
    return result


async def _all(*work: Awaitable[Any]) -> list[Any]:
    return list(await asyncio.gather(*work))


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


async def _verify_all(communities: list[m.Community], review: Client, tokens: m.Tokens, month: str, run_id: str,
                      plan: m.Plan, tally: m.Tally, watch: Watch) -> list[Counter[str]]:
    decided = await _all(*(m.verify_items(c, review, tokens, month, run_id, plan.verify_concurrency, tally)
                           for c in communities))
    await watch.settled(lag_of=["review/"], outboxes=["review"], patience_s=7200)
    return decided


async def _rankings(result: Result, settings: Any, review_from: dict[int, int], ranking_from: dict[int, int],
                    last_signed: float, communities: list[m.Community], month: str) -> None:
    """When the last MonthCertified and the last ranking event reached Kafka (record timestamps)."""
    certified = await record_times(settings, REVIEW.name(settings), review_from, (MonthCertified.type_name(),))
    ranked = await record_times(settings, RANKING.name(settings), ranking_from)
    p = result.phase("rankings")
    p.total = p.tally.done = len(ranked)
    last_certified = max(t for t, _, _ in certified)
    last_ranked = max((t for t, _, _ in ranked), default=float("nan"))
    month_rankings = {key for t, kind, key in ranked if kind == RankingChanged.type_name()}
    p.notes |= {
        "month_certified_records": len(certified),
        "ranking_events": len(ranked),
        "communities_with_rankings": len({c.id for c in communities} & month_rankings),
        "county_ranking": "county" in month_rankings,
        "last_certified_to_last_ranking_s": last_ranked - last_certified,
        "last_signature_to_last_ranking_s": last_ranked - (time.time() - (time.monotonic() - last_signed)),
    }
    del month


async def _chains(county: county_mod.County, sites: list[Any]) -> dict[str, Any]:
    out = {}
    topic = DECLARATIONS.name(county.settings)
    for s in sites:
        report = await verify(county.settings.model_copy(update={"database_url": county.site_procs[s.name].dsn}),
                              topic, [site_source(s.name, county.settings)])
        out[s.name] = {"ok": report.ok, "events": report.store_events, "problems": len(report.problems)}
    return out


def _figures(result: Result) -> None:
    intake = result.phase("intake")
    t = intake.tally
    lat = sorted(t.latencies)
    f = result.figures
    f["items"] = intake.total
    f["items_accepted"] = t.items
    f["requests"] = t.done
    f["refused"] = {k: v for k, v in t.statuses.items() if not k.startswith("2")}
    f["intake_http_items_per_s"] = t.items / max(t.last - t.first, 1e-9) if t.done else 0.0
    f["intake_end_to_end_items_per_s"] = t.items / intake.notes.get("in_review_s", float("inf"))
    f["declaration_latency_ms"] = {"p50": 1000 * statistics.median(lat) if lat else None,
                                   "p99": 1000 * lat[int(len(lat) * 0.99) - 1] if lat else None}
    f["rankings"] = result.phase("rankings").notes
    red = result.phase("redemptions")
    f["redemptions"] = {"done": red.tally.items, "answers": dict(red.tally.statuses),
                        "per_s": red.tally.done / max(red.notes.get("counter_s", 0), 1e-9)}
    f["verification"] = result.phase("verification").notes
    f["cpu_total"] = {k: round(sum(p.cpu.get(k, 0.0) for p in result.phases), 1)
                      for k in result.phases[-1].cpu}
