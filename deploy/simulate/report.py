"""The simulator's display while it runs and its figures at the end (rich)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from rich.console import Group
from rich.table import Table

from deploy.simulate.run import Result

LAG_COLUMNS = (("review items", "review/review_items"), ("review board", "review/review_board"),
               ("ranking", "ranking/ranking"), ("exchange", "exchange/exchange_state"),
               ("sites' ledgers", "sites/ledger"))
OUTBOX_COLUMNS = (("sites' outboxes", "sites"), ("review outbox", "review"), ("ranking outbox", "ranking"))
CPU_ORDER = ("sites", "review", "ranking", "exchange", "kafka", "postgresql: sites", "postgresql: review",
             "postgresql: ranking", "postgresql: exchange", "postgresql: other", "simulator")


def live(result: Result) -> Group:
    """Phases with their progress, and the latest lag and outbox sample."""
    table = Table("phase", "progress", "seconds", "rate /s", title="county simulator", title_justify="left")
    for p in result.phases:
        if not p.began:
            table.add_row(p.name, "", "", "")
            continue
        done = p.tally.items or p.tally.done
        total = p.total or done
        state = f"{done:,} / {total:,}" if total else ("done" if p.ended else "…")
        rate = f"{done / p.seconds:,.0f}" if p.seconds > 0 and done else ""
        table.add_row(p.name + ("" if p.ended else " ◀"), state, f"{p.seconds:,.1f}", rate)
    samples = result.watch.samples if result.watch else []
    lag = Table(*(c for c, _ in LAG_COLUMNS), *(c for c, _ in OUTBOX_COLUMNS), "load 1 min",
                title="consumer lag (records) and outboxes (events) now", title_justify="left")
    if samples:
        s = samples[-1]
        lag.add_row(*(f"{s.lag.get(k, 0):,}" for _, k in LAG_COLUMNS),
                    *(f"{s.outbox.get(k, 0):,}" for _, k in OUTBOX_COLUMNS), f"{s.load:.1f}")
    return Group(table, lag)


def line(result: Result) -> str:
    """The current phase in one line (when the output is not a terminal)."""
    s = result.watch.samples[-1] if result.watch and result.watch.samples else None
    state = ("; lag: " + ", ".join(f"{c} {s.lag.get(k, 0):,}" for c, k in LAG_COLUMNS)
             + "; outboxes: " + ", ".join(f"{c} {s.outbox.get(k, 0):,}" for c, k in OUTBOX_COLUMNS)
             + f"; load {s.load:.1f}") if s else ""
    p = next((p for p in result.phases if p.began and not p.ended), None)
    if p is None:
        last = next((p.name for p in reversed(result.phases) if p.ended), None)
        return (f"after {last}: waiting for the county to catch up" if last else "starting the county") + state
    done = p.tally.items or p.tally.done
    return f"{p.name}: {done:,}/{p.total:,} in {p.seconds:,.0f} s" + state


def final(result: Result) -> Group:
    f = result.figures
    plan = result.plan
    out: list[Any] = []
    phases = Table("phase", "seconds", "done", "rate /s", "notes", title=(
        f"{plan.communities} communities (one site each), {plan.subjects:,} subjects, month {result.month}; "
        f"{plan.connections} requests in flight per site"),
        title_justify="left")
    for p in result.phases:
        done = p.tally.items or p.tally.done
        notes = ", ".join(f"{k} {_fmt(v)}" for k, v in p.notes.items() if not isinstance(v, dict))
        phases.add_row(p.name, f"{p.seconds:,.1f}", f"{done:,}" if done else "",
                       f"{done / p.seconds:,.0f}" if done and p.seconds else "", notes)
    out.append(phases)
    missing = f["items"] - f["items_accepted"]  # a rate over part of the month is no answer to the aim
    aim = (f"not measured: {missing:,} planned items refused" if missing
           else "met" if f["intake_end_to_end_items_per_s"] >= 1000 else "MISSED")
    lat = f["declaration_latency_ms"]
    intake = Table("intake", "", title="intake (every channel, every site)", title_justify="left")
    intake.add_row("points items accepted / planned", f"{f['items_accepted']:,} / {f['items']:,}")
    intake.add_row("requests (declarations, activities, work reports, needs, deductions)", f"{f['requests']:,}")
    intake.add_row("refused", ", ".join(f"{k}: {v}" for k, v in f["refused"].items()) or "none")
    intake.add_row("items/s while the sites answered (HTTP 201)", f"{f['intake_http_items_per_s']:,.0f}")
    intake.add_row("items/s end to end (first request → every item in review's read model)",
                   f"{f['intake_end_to_end_items_per_s']:,.0f}  (aim ≥ 1,000: {aim})")
    intake.add_row("requests/s end to end (a declaration is one item; an activity or a work report many)",
                   f"{f['intake_end_to_end_requests_per_s']:,.0f}")
    intake.add_row("single declaration latency p50 / p99",
                   f"{_fmt(lat['p50'])} ms / {_fmt(lat['p99'])} ms" if lat["p50"] is not None else "-")
    out.append(intake)
    r = f["rankings"]
    delay = r.get("last_certified_to_last_ranking_s", math.nan)
    complete = r.get("communities_ranked") == plan.communities and r.get("county_ranked") and delay >= 0
    verdict = ("met" if delay <= 10 else "MISSED") if complete else "not measured: not every ranking was said"
    ranking = Table("certification → rankings", "", title="certification and rankings", title_justify="left")
    ranking.add_row("communities certified", f"{r.get('month_certified_records', 0)} MonthCertified records")
    ranking.add_row("ranking events after the certifications", f"{r.get('ranking_events', 0):,}; communities ranked "
                    f"{r.get('communities_ranked', 0)}/{plan.communities}, county-wide: "
                    f"{'yes' if r.get('county_ranked') else 'no'}")
    ranking.add_row("last MonthCertified on Kafka → last ranking event on Kafka",
                    f"{delay:,.1f} s  (aim ≤ 10 s: {verdict}; moonshot 3 s)")
    ranking.add_row("last completing signature answered → last ranking event on Kafka",
                    f"{r.get('last_signature_to_last_ranking_s', math.nan):,.1f} s")
    red = f["redemptions"]
    ranking.add_row("redemptions at the counters", f"{red['done']:,} ({red['per_s']:,.0f}/s); answers "
                    + ", ".join(f"{k}: {v}" for k, v in red["answers"].items()))
    if "chains" in f:
        bad = [n for n, c in f["chains"].items() if not c["ok"]]
        ranking.add_row("every site's chain", "verified" if not bad else f"PROBLEMS at {', '.join(bad)}")
    out.append(ranking)
    out.append(lag_table(result))
    out.append(cpu_table(result))
    return Group(*out)


def lag_table(result: Result, rows: int = 24) -> Table:
    samples = result.watch.samples if result.watch else []
    table = Table("t (s)", "phase", *(c for c, _ in LAG_COLUMNS), *(c for c, _ in OUTBOX_COLUMNS), "load 1 min",
                  title="consumer lag over time (records behind, stored offsets vs end offsets; max per interval)",
                  title_justify="left")
    if not samples:
        return table
    span = samples[-1].t - samples[0].t
    step = max(span / rows, 1e-9)
    buckets: dict[int, list[Any]] = {}
    for s in samples:
        buckets.setdefault(int((s.t - samples[0].t) / step), []).append(s)
    for _, group in sorted(buckets.items()):
        phase = group[-1].phase
        table.add_row(f"{group[0].t:,.0f}", phase,
                      *(f"{max(s.lag.get(k, 0) for s in group):,}" for _, k in LAG_COLUMNS),
                      *(f"{max(s.outbox.get(k, 0) for s in group):,}" for _, k in OUTBOX_COLUMNS),
                      f"{max(s.load for s in group):.1f}")
    return table


def cpu_table(result: Result) -> Table:
    names = [n for n in CPU_ORDER if any(n in p.cpu for p in result.phases)]
    phases = [p for p in result.phases if p.cpu]
    table = Table("CPU seconds", *(p.name for p in phases), "total", "share", title=(
        "where the CPU went (user + system seconds per process group; 2 cores = 2 s per second)"),
        title_justify="left")
    totals = {n: sum(p.cpu.get(n, 0.0) for p in phases) for n in names}
    grand = sum(totals.values()) or 1.0
    for n in names:
        # + 0.0: readings a clock tick apart make "-0.0" of a group that did nothing
        table.add_row(n, *(f"{round(p.cpu.get(n, 0.0), 1) + 0.0:,.1f}" for p in phases), f"{totals[n]:,.1f}",
                      f"{100 * totals[n] / grand:.0f}%")
    table.add_row("wall seconds", *(f"{p.seconds:,.1f}" for p in phases), f"{sum(p.seconds for p in phases):,.1f}", "")
    return table


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def as_json(result: Result) -> dict[str, Any]:
    return {"plan": dataclasses.asdict(result.plan), "month": result.month, "figures": result.figures,
            "phases": {p.name: {"seconds": p.seconds, "done": p.tally.done, "items": p.tally.items, "cpu": p.cpu,
                                "notes": p.notes} for p in result.phases},
            "samples": [dataclasses.asdict(s) for s in (result.watch.samples if result.watch else [])]}
