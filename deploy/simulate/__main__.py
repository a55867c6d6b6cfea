"""``python -m deploy.simulate``: start (or use) a stack, run a county's month, print the figures."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
import uvloop
from rich.console import Console
from rich.live import Live

from deploy.simulate import report
from deploy.simulate.month import Plan
from deploy.simulate.run import Result, simulate
from deploy.testing import throwaway_stack

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)


@app.command()
def main(
    communities: Annotated[int, typer.Option(help="Relocation communities, one site each.")] = 20,
    subjects: Annotated[int, typer.Option(help="Points subjects in the county (shared evenly).")] = 200_000,
    activity_share: Annotated[float, typer.Option(help="Share of persons attending one activity.")] = 0.5,
    activity_size: Annotated[int, typer.Option(help="Attendees per activity.")] = 50,
    report_lines: Annotated[int, typer.Option(help="Lines per enterprise work report.")] = 200,
    needs: Annotated[int, typer.Option(help="Needs-board tasks per community.")] = 5,
    deduction_every: Annotated[int, typer.Option(help="One deduction per this many persons.")] = 200,
    connections: Annotated[int, typer.Option(help="Concurrent requests per site.")] = 4,
    verify_concurrency: Annotated[int, typer.Option(help="Concurrent verifications per community.")] = 2,
    counters: Annotated[int, typer.Option(help="Supermarket counters per community.")] = 3,
    redemptions: Annotated[int, typer.Option(help="Redemptions per community.")] = 100,
    partitions: Annotated[int, typer.Option(help="Partitions per topic.")] = 12,
    small: Annotated[bool, typer.Option("--small", help="A smoke run: 3 communities, 600 subjects.")] = False,
    sample_s: Annotated[float, typer.Option(help="Seconds between lag samples.")] = 2.0,
    verify_chains: Annotated[bool, typer.Option(help="Verify every site's hash chain at the end.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the figures to this file.")] = None,
) -> None:
    """Start a throw-away Kafka + PostgreSQL (or use KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL), run a county's
    month through its sites and services, and print what it measured."""
    if small:
        communities, subjects, redemptions, needs, report_lines = 3, 600, 20, 2, 40
    plan = Plan(communities=communities, subjects=subjects, activity_share=activity_share,
                activity_size=activity_size, report_lines=report_lines, needs=needs,
                deduction_every=deduction_every, connections=connections, verify_concurrency=verify_concurrency,
                counters=counters, redemptions=redemptions)
    console = Console()
    logs = Path(tempfile.mkdtemp(prefix="points-sim-logs-"))
    interactive = console.is_terminal
    with throwaway_stack("points-sim-") as handle:
        with Live(console=console, refresh_per_second=2, transient=True) if interactive else _Quiet() as display:
            def update(result: Result) -> None:
                if display is not None:
                    display.update(report.live(result))

            result = uvloop.run(simulate(handle, plan, logs, partitions=partitions, sample_s=sample_s,
                                         verify_chains=verify_chains, on_update=update))
    console.print(report.final(result))
    console.print(f"service and site logs: {logs}")
    if json_out is not None:
        json_out.write_text(json.dumps({"plan": dataclasses.asdict(plan), "month": result.month,
                                        "figures": result.figures,
                                        "phases": {p.name: {"seconds": p.seconds, "done": p.tally.done,
                                                            "items": p.tally.items, "notes": p.notes}
                                                   for p in result.phases}}, indent=2, default=str))


class _Quiet:
    """No live display (not a terminal): the figures are printed at the end."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    app()
