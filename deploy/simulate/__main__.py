"""``python -m deploy.simulate``: start a throw-away stack (or use one), run a county's month, print the figures."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import tempfile
import time
from collections.abc import Coroutine
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
import uvloop
from rich.console import Console
from rich.live import Live

from deploy.simulate import report
from deploy.simulate.plan import SMALL, Plan
from deploy.simulate.run import Result, simulate
from deploy.testing import throwaway_stack

D = Plan()
PLAIN_EVERY_S = 15  # a progress line this often when the output is not a terminal
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    communities: Annotated[int, typer.Option(help="Relocation communities, one site each.")] = D.communities,
    subjects: Annotated[int, typer.Option(help="Points subjects in the county (shared evenly).")] = D.subjects,
    activity_share: Annotated[float, typer.Option(help="Share of persons at one activity.")] = D.activity_share,
    activity_size: Annotated[int, typer.Option(help="Attendees per activity.")] = D.activity_size,
    report_lines: Annotated[int, typer.Option(help="Lines per enterprise work report.")] = D.report_lines,
    needs: Annotated[int, typer.Option(help="Needs-board tasks per community.")] = D.needs,
    deduction_every: Annotated[int, typer.Option(help="One deduction per this many persons.")] = D.deduction_every,
    connections: Annotated[int, typer.Option(help="Concurrent requests per site.")] = D.connections,
    verify_concurrency: Annotated[int, typer.Option(help="Pages of looks (500 items) at once per community.")]
    = D.verify_concurrency,
    counters: Annotated[int, typer.Option(help="Supermarket counters per community.")] = D.counters,
    redemptions: Annotated[int, typer.Option(help="Redemptions per community.")] = D.redemptions,
    partitions: Annotated[int, typer.Option(help="Partitions per topic.")] = 12,
    small: Annotated[bool, typer.Option("--small", help=f"A smoke run: {SMALL}.")] = False,
    sample_s: Annotated[float, typer.Option(help="Seconds between lag samples.")] = 2.0,
    verify_chains: Annotated[bool, typer.Option(help="Verify every site's hash chain at the end.")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the figures to this file.")] = None,
) -> None:
    """A county of many communities, each with its own site, lives through one month: the roster, a month of
    declarations from every site through every channel, verification, every community's certification,
    the rankings, redemptions at several counters. Prints intake throughput, consumer lag over time, the
    time from the last MonthCertified to the last ranking event, and where the CPU went.

    Starts a throw-away Kafka + PostgreSQL (or uses KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL)."""
    plan = Plan(communities=communities, subjects=subjects, activity_share=activity_share,
                activity_size=activity_size, report_lines=report_lines, needs=needs, deduction_every=deduction_every,
                connections=connections, verify_concurrency=verify_concurrency, counters=counters,
                redemptions=redemptions)
    if small:
        plan = dataclasses.replace(plan, **SMALL)
    console = Console()
    if not console.is_terminal:  # a log file: wide enough that the lag and CPU tables keep their names
        console = Console(width=max(console.width, 160))
    logs = Path(tempfile.mkdtemp(prefix="points-sim-logs-"))
    said = [0.0]
    with throwaway_stack("points-sim-") as handle, (
            Live(console=console, refresh_per_second=2, transient=True) if console.is_terminal else nullcontext()
    ) as display:
        def update(result: Result) -> None:
            if display is not None:
                display.update(report.live(result))
            elif time.monotonic() - said[0] >= PLAIN_EVERY_S:
                said[0] = time.monotonic()
                console.print(report.line(result), highlight=False, soft_wrap=True)

        result = Result(plan)
        try:
            uvloop.run(_stopped_by_signals(simulate(handle, result, logs, partitions=partitions, sample_s=sample_s,
                                                    verify_chains=verify_chains, on_update=update)))
        except asyncio.CancelledError:
            console.print("stopped by a signal: the county's services and sites stopped; removing the throw-away stack")
            raise typer.Exit(130) from None
        finally:  # what was measured, also when a phase failed (none when the county never started)
            if result.figures:
                console.print(report.final(result))
            console.print(f"service and site logs: {logs}")
            if json_out is not None and result.figures:
                json_out.write_text(json.dumps(report.as_json(result), indent=2, default=str))


async def _stopped_by_signals(run: Coroutine[Any, Any, Result]) -> Result:
    """SIGTERM or SIGINT cancels the run: the county's services and sites are stopped, the figures so far
    printed, the throw-away stack removed. (By default SIGTERM killed this process alone and left dozens of
    processes and gigabytes behind; a job started in the background ignores SIGINT.)"""
    task, loop = asyncio.current_task(), asyncio.get_running_loop()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    return await run


if __name__ == "__main__":
    app()
