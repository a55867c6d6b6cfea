"""The fault table: one row per fault, and the verdict."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from deploy.faults.suite import Row


def _s(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f}"


def table(rows: Sequence[Row]) -> Table:
    t = Table("fault", "load (decl/s)", "acknowledged", "lost", "doubled", "reordered", "copies dropped",
              "first ack (s)", "caught up (s)", "read models = rebuild", "chains verify", title="Fault suite")
    for r in rows:
        bad_models = sum(1 for n in r.models.values() if n)
        bad_chains = sum(1 for p in r.chains.values() if p)
        t.add_row(r.fault, f"{r.load:.1f}", f"{r.tally.acknowledged:,}", str(r.tally.lost), str(r.tally.doubled),
                  str(r.tally.reordered), f"{r.tally.copies:,}", _s(r.first_ack_s), _s(r.caught_up_s),
                  f"{len(r.models) - bad_models}/{len(r.models)}", f"{len(r.chains) - bad_chains}/{len(r.chains)}",
                  style=None if r.ok else "red")
    return t


def show(rows: Sequence[Row], console: Console) -> None:
    console.print(table(rows))
    for r in rows:
        for note in r.notes:
            console.print(f"  {r.fault}: {note}", markup=False, highlight=False)
    total = sum(r.tally.acknowledged for r in rows)
    lost, doubled, reordered = (sum(getattr(r.tally, k) for r in rows) for k in ("lost", "doubled", "reordered"))
    verdict = "[green]nothing lost, doubled or reordered[/green]" if not (lost or doubled or reordered) else \
        f"[red]{lost} lost, {doubled} doubled, {reordered} reordered[/red]"
    console.print(f"{total:,} acknowledged declarations in all: {verdict}")
