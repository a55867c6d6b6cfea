"""``python -m deploy.faults``: the fault suite against a cluster-mode stack of its own (docs/deploy.md)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from functools import partial
from pathlib import Path

import typer
from rich.console import Console

from deploy.faults import certify
from deploy.faults import faults as f
from deploy.faults.harness import COUNTY_COMMUNITY, SITE, Harness
from deploy.faults.load import Load, seed
from deploy.faults.report import show
from deploy.faults.suite import Row, run_fault, settle
from shared.events import load_catalogue
from shared.logging import configure_logging
from shared.settings import get_settings

app = typer.Typer(add_completion=False, help=__doc__)
console = Console(width=None if sys.stdout.isatty() else 200)
SERVICE_KINDS = ("declarations", "review", "ranking", "exchange")
KINDS = ("broker", "postgres", *SERVICE_KINDS, "duplicates", "poison", "site")


def plan(kinds: list[str], fault_seconds: float, site_cut_seconds: float, duplicates: int) -> list[f.Fault]:
    out: list[f.Fault] = []
    for kind in kinds:
        if kind == "broker":
            out.append(f.broker_killed(1, fault_seconds))
        elif kind == "postgres":
            out.append(f.postgres_restarted())
        elif kind in SERVICE_KINDS:
            out.append(f.service_killed(kind, fault_seconds))
        elif kind == "duplicates":
            out.append(f.duplicates(duplicates))
        elif kind == "poison":
            out.append(f.poison())
        elif kind == "site":
            out.append(f.site_cut(site_cut_seconds))
        else:
            raise typer.BadParameter(f"unknown fault {kind!r} (known: {', '.join(KINDS)})")
    return out


async def suite(harness: Harness, faults: list[f.Fault], rate: float, subjects: int, steady: float,
                after: float, certify_under: int | None = None) -> list[Row]:
    """The faults in turn under load; during fault number ``certify_under`` (if any) a month is certified."""
    load_catalogue()
    settings = harness.admin_settings()
    targets = [await asyncio.to_thread(seed, harness.county_url, COUNTY_COMMUNITY, subjects),
               await asyncio.to_thread(seed, harness.site_url, SITE.community_id, subjects)]
    month = None if certify_under is None else await certify.prepare(harness.county_url,
                                                                     harness.stack.service_url("review"))
    load = Load(targets, rate)
    stop = asyncio.Event()
    running = asyncio.create_task(load.run(stop))
    supervisor = asyncio.create_task(supervise(harness, stop))
    rows: list[Row] = []
    try:
        since = time.monotonic()
        for i, fault in enumerate(faults):
            alongside = partial(certify.certify, month) if month is not None and i == certify_under else None
            rows.append(await run_fault(fault, harness, settings, load, steady=steady, after=after, since=since,
                                        say=lambda text: console.log(text, markup=False, highlight=False),
                                        alongside=alongside))
            since = time.monotonic()
            r = rows[-1]
            if "certified" in r.facts:
                c = r.facts["certified"]
                r.notes.append(f"month {c['month']} of {c['community']} certified during this fault "
                               f"({c['items']} items, {c['awarded']} awarded)")
            console.log(f"{r.fault}: {r.tally.acknowledged} acknowledged, lost {r.tally.lost}, doubled "
                        f"{r.tally.doubled}, reordered {r.tally.reordered}; load {os.getloadavg()[0]:.2f}",
                        markup=False, highlight=False)
    finally:
        stop.set()
        await running
        await supervisor
    await settle(harness, settings)
    return rows


async def supervise(harness: Harness, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if harness.keep_site_relay_up():
            console.log(f"site relay had exited: started again ({harness.relay_restarts} so far)", markup=False,
                        highlight=False)
        await asyncio.sleep(1.0)


@app.command()
def run(faults: str = typer.Option(",".join(KINDS), help=f"Which faults, in order: {', '.join(KINDS)}."),
        rate: float = typer.Option(20.0, help="Declarations per second, over the county's intake and the site's."),
        subjects: int = typer.Option(300, help="Volunteers per community (a rule caps 100 items each a month)."),
        steady: float = typer.Option(10.0, help="Seconds of load before each fault."),
        fault_seconds: float = typer.Option(15.0, help="How long a killed broker or service stays down."),
        site_cut_seconds: float = typer.Option(60.0, help="How long the site is cut off."),
        after: float = typer.Option(15.0, help="Seconds of load after each fault ends, before the checks."),
        duplicates: int = typer.Option(50, help="Records per partition re-produced by the duplicates fault."),
        certify_under: str = typer.Option("broker", help="During the first fault of this kind, certify last month "
                                          "of a community of its own (verify, sign); empty: none."),
        keep: bool = typer.Option(False, help="Keep the stack's folder (logs, data) afterwards."),
        report_json: str = typer.Option("", help="Also write the rows as JSON to this file."),
        stack_dir: str = typer.Option("", help="The stack's folder (default: a fresh temporary one)."),
        ) -> None:
    """Start a cluster-mode stack, run the faults under load, print the table; exit 1 on any loss."""
    configure_logging("fault-suite", logging.ERROR)  # the replays' dead-letter warnings are the point, not news
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its retries while a broker is down, likewise
    kinds = [k.strip() for k in faults.split(",") if k.strip()]
    chosen = plan(kinds, fault_seconds, site_cut_seconds, duplicates)
    under = kinds.index(certify_under) if certify_under in kinds else None
    if certify_under and under is None:
        raise typer.BadParameter(f"--certify-under {certify_under!r} is not among the faults chosen")
    harness = Harness.create(Path(stack_dir) if stack_dir else None)
    console.log(f"stack in {harness.root}; load average {os.getloadavg()}", markup=False, highlight=False)
    started = time.monotonic()
    rows: list[Row] = []
    try:
        harness.up()
        os.environ["TOKEN_SECRET"] = harness.token_secret()  # the tokens the load's staff carry
        get_settings.cache_clear()
        console.log(f"cluster-mode stack up in {time.monotonic() - started:.0f} s", markup=False, highlight=False)
        rows = asyncio.run(suite(harness, chosen, rate, subjects, steady, after, under))
    finally:
        harness.down(keep=keep)
    show(rows, console)
    if harness.relay_restarts:
        console.print(f"the site's relay exited on its own {harness.relay_restarts} time(s) and was started again "
                      "by the suite's supervisor")
    if report_json:
        Path(report_json).write_text(json.dumps([r.as_json() for r in rows], indent=2) + "\n")
    console.print(f"run took {time.monotonic() - started:.0f} s; load average {os.getloadavg()}")
    if not rows or not all(r.ok for r in rows):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
