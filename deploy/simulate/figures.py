"""The simulator's figures, from what it tallied and from the records on Kafka."""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

from deploy.simulate.watch import record_times
from shared.envelope import site_source
from shared.events.ranking import COUNTY, RankingChanged
from shared.events.review import MonthCertified
from shared.settings import Settings
from shared.topics import DECLARATIONS, RANKING, REVIEW
from shared.verify import verify_all

if TYPE_CHECKING:
    from deploy.simulate.county import County
    from deploy.simulate.run import Result


async def rankings(settings: Settings, review_from: dict[int, int], ranking_from: dict[int, int],
                   last_signed: float, communities: list[str]) -> dict[str, Any]:
    """When the last MonthCertified and the last ranking event reached Kafka (the records' timestamps), and
    which rankings changed after the certifications (``*_from``: the topics' end offsets before them)."""
    certified = await record_times(settings, REVIEW.name(settings), review_from, (MonthCertified.type_name(),))
    ranked = await record_times(settings, RANKING.name(settings), ranking_from)
    last_certified = max(t for t, _, _ in certified)
    last_ranked = max((t for t, _, _ in ranked), default=float("nan"))
    scopes = {key for _, kind, key in ranked if kind == RankingChanged.type_name()}
    signed_wall = time.time() - (time.monotonic() - last_signed)
    return {"month_certified_records": len(certified), "ranking_events": len(ranked),
            "communities_ranked": len(set(communities) & scopes), "county_ranked": COUNTY in scopes,
            "last_certified_to_last_ranking_s": last_ranked - last_certified,
            "last_signature_to_last_ranking_s": last_ranked - signed_wall}


async def chains(county: County) -> dict[str, Any]:
    """Each site's hash chain, its store against its records on the declarations topic (one read of it)."""
    reports = await verify_all(county.settings, DECLARATIONS.name(county.settings), {
        site.name: (county.site_procs[site.name].dsn, [site_source(site.name, county.settings)])
        for site in county.sites})
    return {name: {"ok": r.ok, "events": r.store_events, "problems": len(r.problems)} for name, r in reports.items()}


def figures(result: Result) -> dict[str, Any]:
    intake = result.phase("intake")
    t = intake.tally
    lat = sorted(t.latencies)
    red = result.phase("redemptions")
    return {
        "items": intake.total,
        "items_accepted": t.items,
        "requests": t.done,
        "refused": t.refused,
        "intake_http_items_per_s": t.items / max(t.last - t.first, 1e-9) if t.done else 0.0,
        "intake_end_to_end_items_per_s": t.items / intake.notes.get("in_review_s", float("inf")),
        "intake_end_to_end_requests_per_s": t.done / intake.notes.get("in_review_s", float("inf")),
        "declaration_latency_ms": {"p50": 1000 * statistics.median(lat) if lat else None,
                                   "p99": 1000 * lat[max(0, int(len(lat) * 0.99) - 1)] if lat else None},
        "rankings": result.phase("rankings").notes,
        "redemptions": {"done": red.tally.items, "answers": dict(red.tally.statuses),
                        "per_s": red.tally.done / max(red.notes.get("counter_s", 0), 1e-9)},
        "verification": result.phase("verification").notes,
        "cpu_total": {k: round(sum(p.cpu.get(k, 0.0) for p in result.phases), 1)
                      for k in {k for p in result.phases for k in p.cpu}},
    }
