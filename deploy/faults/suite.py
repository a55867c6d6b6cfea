"""One fault after another under a steady load, and what each left behind (a ``Row`` of the report).

Per fault: ``steady`` seconds of load; the fault begins, lasts its hold, ends; ``after`` seconds of load;
then the load pauses, the outboxes drain and the consumers catch up, and the checks run: the accounting
of every command acknowledged since the previous checks, every read model against a replay, every chain.
Recovery ("caught up") counts from the fault's end until the outboxes have published what they held then
(after a site cut: the site's backlog) and every consumer holds what the log held at that point.
Work may run ``alongside`` a fault (a month certified): from the fault's start, awaited before the checks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from deploy.faults import checks
from deploy.faults.accounting import Tally, tally
from deploy.faults.faults import Facts, Fault
from deploy.faults.harness import Harness
from deploy.faults.load import Load
from shared.settings import Settings

CATCH_UP_S = 300.0


@dataclass
class Row:
    fault: str
    load: float  # acknowledged declarations per second from the fault's start to the checks
    tally: Tally
    first_ack_s: float | None  # from the fault's end to the next acknowledgement
    caught_up_s: float | None  # from the fault's end until every consumer holds what the log held then
    models: dict[str, int] = field(default_factory=dict)  # read model -> rows differing from a replay
    chains: dict[str, str] = field(default_factory=dict)  # chain -> "" or its first problem
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # what the fault (and work alongside) saw
    failed: list[str] = field(default_factory=list)  # work alongside the fault that did not succeed

    def as_json(self) -> dict[str, object]:
        t = self.tally
        return {"fault": self.fault, "load": round(self.load, 2), "acknowledged": t.acknowledged, "lost": t.lost,
                "doubled": t.doubled, "reordered": t.reordered, "copies": t.copies,
                "streams_out_of_order": t.streams_out_of_order, "first_ack_s": self.first_ack_s,
                "caught_up_s": self.caught_up_s, "models": self.models, "chains": self.chains, "notes": self.notes,
                "facts": self.facts, "ok": self.ok}

    @property
    def ok(self) -> bool:
        return (self.tally.clean and not any(self.models.values()) and not any(self.chains.values())
                and self.caught_up_s is not None and not self.failed)


async def _wait(check: Callable[[], object], within: float, every: float = 0.5) -> float | None:
    began = time.monotonic()
    while time.monotonic() - began < within:
        try:
            if await check():  # type: ignore[misc]
                return time.monotonic() - began
        except Exception:  # a server still coming back: ask again
            pass
        await asyncio.sleep(every)
    return None


async def settle(harness: Harness, settings: Settings, within: float = CATCH_UP_S) -> bool:
    """Every outbox published and every consumer at the end of the log."""
    async def quiet() -> bool:
        if await checks.unpublished(harness):
            return False
        return not await checks.lagging(harness, settings, await checks.end_offsets(settings))
    return await _wait(quiet, within) is not None


async def run_fault(fault: Fault, harness: Harness, settings: Settings, load: Load, *, steady: float,
                    after: float, since: float, say: Callable[[str], None],
                    alongside: Callable[[], Coroutine[Any, Any, Facts]] | None = None) -> Row:
    await asyncio.sleep(steady)
    began = time.monotonic()
    say(f"{fault.name}: begins")
    facts: Facts = {}
    facts |= await fault.inflict(harness, settings) or {}
    work: asyncio.Task[Facts] | None = asyncio.create_task(alongside()) if alongside is not None else None
    if fault.hold:
        await asyncio.sleep(fault.hold)
    if fault.restore is not None:
        say(f"{fault.name}: restoring")
        facts |= await fault.restore(harness, settings) or {}
    ended = time.monotonic()
    facts["acknowledged_during"] = {t.name: sum(1 for a in load.acknowledged_between(began, ended)
                                                 if a.target == t.name) for t in load.targets}
    held: dict[str, int] = {}

    async def heads() -> bool:
        held.update(await checks.outbox_heads(harness))
        return True
    await _wait(heads, 60)

    async def published() -> bool:
        return not await checks.unpublished(harness, upto=held)
    drained = await _wait(published, CATCH_UP_S)
    ends: checks.Ends = {}

    async def snapshot() -> bool:
        ends.update(await checks.end_offsets(settings))
        return True
    await _wait(snapshot, 60)

    async def consumers_hold_it() -> bool:
        return not await checks.lagging(harness, settings, ends)
    caught_up = await _wait(consumers_hold_it, CATCH_UP_S)
    caught_up_s = None if caught_up is None or drained is None else time.monotonic() - ended
    await asyncio.sleep(max(0.0, after - (time.monotonic() - ended)))
    failed: list[str] = []
    if work is not None:
        try:
            facts |= await work
        except Exception as exc:  # reported in the row (and failing it), never swallowed
            failed.append(f"alongside {fault.name}: {exc!r}"[:500])
    await load.pause()
    checked = time.monotonic()
    first = load.first_ack_after(ended)
    row = Row(fault.name, len(load.acknowledged_between(began, checked)) / max(checked - began, 1e-9), Tally(),
              None if first is None else first - ended, caught_up_s, facts=facts, failed=failed)
    row.notes += failed
    say(f"{fault.name}: settling, then checking")
    if not await settle(harness, settings):
        row.notes.append(f"not settled in {CATCH_UP_S:.0f} s: unpublished {await checks.unpublished(harness)}")
    acked = [a.item_id for a in load.acknowledged_between(since, checked)]
    row.tally = tally(acked, await checks.declarations_log(settings))
    row.models = await checks.models_differing(harness, settings)
    row.chains = await checks.chains(harness, settings)
    row.notes += row.tally.examples
    row.notes += [f"{m}: {n} rows differ" for m, n in row.models.items() if n]
    row.notes += [f"chain {c}: {p}" for c, p in row.chains.items() if p]
    load.resume()
    return row
