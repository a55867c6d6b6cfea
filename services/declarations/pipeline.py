"""The one path every command of the service takes, in one transaction:

    claim the idempotency key → load the state it needs → decide (pure) → append each stream at the
    version it was loaded at → evolve (pure) → save the snapshots → store the answer.

Group commit is a queue in front of that path: a worker takes everything queued into one
transaction: one WAL flush and a handful of statements for many requests, and the process never
races itself on a subject. Every command joins the one queue, a command on several subjects
(attendance, a work report) too: run beside the worker as a batch of its own, it lost the race for
its subjects to the worker's commits four times in a row under load and answered 409 (the
simulated county, 24 requests in flight per site: 156-171 activities and work reports, a tenth of
the month's items). One queue also gives the biggest batches: on 2 cores, several queues were
slower (bench/intake.py: 912/s with 1, 843/s with 2, 804/s with 4), and a site takes one
community's intake. Within a batch, each command is decided on the state its
predecessors left. If another transaction appended to one of the streams
first (``ConcurrencyError``), the whole batch is decided again on the new state, at most
``ATTEMPTS`` times; then each command answers 409 with a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from services.declarations import tables
from services.declarations.catalogue_store import CatalogueCache
from services.declarations.domain.commands import (
    Command,
    CompleteNeed,
)
from services.declarations.domain.decide import State, Wants, decide, wants
from services.declarations.domain.state import Aggregate, Community, Need, Subject, evolve, stream_of
from shared.errors import Rejected, conflict, key_reused
from shared.events import Event
from shared.logging import get_logger
from shared.store import Append, ConcurrencyError, EventStore, Recorded

log = get_logger("declarations.pipeline")
ATTEMPTS = 4
Answer = tuple[int, dict[str, Any], bool]  # status, response, replayed
Respond = Callable[[list[Event], list[str]], tuple[int, dict[str, Any]]]


@dataclass
class Job:
    command: Command
    key: str  # the command log's key (command name + the client's idempotency key)
    fingerprint: str
    recorded: Recorded
    respond: Respond
    future: asyncio.Future[Answer] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Pipeline:
    def __init__(self, pool: asyncpg.Pool, store: EventStore, catalogue: CatalogueCache, *, max_batch: int = 256,
                 community: str | None = None) -> None:
        self.pool, self.store, self.catalogue = pool, store, catalogue
        self.community = community  # on a community site: the one community whose events it may write
        self.max_batch = max_batch
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.batches = self.conflicts = 0

    async def submit(self, job: Job) -> Answer:
        """The answer to one command; a refusal is raised as ``Rejected``."""
        if self.task is None:
            self.task = asyncio.create_task(self._worker())
        await self.queue.put(job)
        return await job.future

    async def stop(self) -> None:
        """At shutdown: let queued commands finish, then stop the worker."""
        for _ in range(100):
            if self.queue.empty():
                break
            await asyncio.sleep(0.05)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def _worker(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            await self._run(batch)

    async def _run(self, jobs: list[Job]) -> None:
        """Decide and append ``jobs`` together; every job's future gets its answer or its error."""
        results: Sequence[Answer | BaseException] = []
        for attempt in range(1, ATTEMPTS + 1):
            try:
                results = await self._once(jobs)
                break
            except (ConcurrencyError, asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
                self.conflicts += 1
                log.info("declarations.conflict", attempt=attempt, size=len(jobs), error=str(exc))
                results = [conflict(attempt)] * len(jobs)
            except Exception as exc:  # every waiting request gets the error, none hangs
                log.error("declarations.batch_failed", size=len(jobs), error=repr(exc))
                results = [exc] * len(jobs)
                break
        for job, result in zip(jobs, results, strict=True):
            if job.future.done():
                continue
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)

    async def _once(self, jobs: list[Job]) -> list[Answer | BaseException]:
        self.batches += 1
        results: list[Answer | BaseException | None] = [None] * len(jobs)
        first: dict[str, int] = {}
        for i, job in enumerate(jobs):  # the same key twice in one batch: the later one replays the first
            first.setdefault(job.key, i)
        async with self.pool.acquire() as conn, conn.transaction():
            mine = [i for i, job in enumerate(jobs) if first[job.key] == i]
            claimed = {r["idempotency_key"] for r in await conn.fetch(
                """insert into command_log (idempotency_key, fingerprint)
                   select * from unnest($1::text[], $2::text[]) on conflict do nothing returning idempotency_key""",
                [jobs[i].key for i in mine], [jobs[i].fingerprint for i in mine])}
            await self._replays(conn, jobs, [i for i in mine if jobs[i].key not in claimed], results)
            todo = [i for i in mine if jobs[i].key in claimed]
            if todo:
                await self._decide_and_append(conn, jobs, todo, results)
        for i, job in enumerate(jobs):  # in-batch repeats of a key get the first one's answer
            j = first[job.key]
            if j != i:
                r = results[j]
                if isinstance(r, tuple):
                    results[i] = (r[0], r[1], True) if job.fingerprint == jobs[j].fingerprint else key_reused()
                else:
                    results[i] = r
        return [r if r is not None else RuntimeError("no answer") for r in results]

    async def _replays(self, conn: asyncpg.Connection, jobs: list[Job], idx: list[int],
                       results: list[Answer | BaseException | None]) -> None:
        if not idx:
            return
        rows = {r["idempotency_key"]: r for r in await conn.fetch(
            "select idempotency_key, fingerprint, status, response from command_log "
            "where idempotency_key = any($1::text[])", [jobs[i].key for i in idx])}
        for i in idx:
            row = rows.get(jobs[i].key)
            if row is None or row["status"] is None:  # its first run was rolled back meanwhile: decide again
                raise ConcurrencyError(f"idempotency key {jobs[i].key} changed hands")
            if row["fingerprint"] != jobs[i].fingerprint:
                results[i] = key_reused()
            else:
                results[i] = (row["status"], orjson.loads(row["response"]), True)

    async def _decide_and_append(self, conn: asyncpg.Connection, jobs: list[Job], todo: list[int],
                                 results: list[Answer | BaseException | None]) -> None:
        state, heads = await self._load(conn, [jobs[i].command for i in todo])
        view = _Working(state)
        refused: list[str] = []
        appends: list[Append] = []
        decided: list[tuple[int, list[Event], int, int]] = []  # job, events, its first and last append
        for i in todo:
            job = jobs[i]
            outcome = decide(job.command, view.state())
            if not isinstance(outcome, Rejected) and self.community is not None:
                outcome = only_this_site(outcome, self.community)
            if isinstance(outcome, Rejected):
                results[i] = outcome
                refused.append(job.key)
                continue
            start = len(appends)
            for stream, key, events in _by_stream(outcome):
                appends.append((stream, view.version(stream), events, key, job.recorded))
                view.apply(stream, events)
            decided.append((i, outcome, start, len(appends)))
        envelopes = await self.store.append_many(conn, appends, heads)
        hashes = {envs[-1].subject: envs[-1].hash for envs in envelopes if envs}
        answers: list[tuple[str, int, str]] = []
        for i, outcome, start, end in decided:
            event_ids = [str(e.id) for envs in envelopes[start:end] for e in envs]
            status, response = jobs[i].respond(outcome, event_ids)
            results[i] = (status, response, False)
            answers.append((jobs[i].key, status, orjson.dumps(response).decode()))
        await tables.save(conn, view.before, view.changed(), hashes)
        if view.catalogue_changed:
            self.catalogue.invalidate()
        if refused:  # a refusal leaves no trace: the key may be used again for a fixed request
            await conn.execute("delete from command_log where idempotency_key = any($1::text[])", refused)
        if answers:
            await conn.execute(
                """update command_log c set status = u.s, response = u.r::jsonb
                   from unnest($1::text[], $2::int[], $3::text[]) as u(k, s, r) where c.idempotency_key = u.k""",
                [a[0] for a in answers], [a[1] for a in answers], [a[2] for a in answers])

    async def _load(self, conn: asyncpg.Connection, commands: list[Command]) -> tuple[State, tables.Heads]:
        catalogue, published = await self.catalogue.current(conn)
        empty = State(catalogue, published=published)
        w = Wants()
        for c in commands:
            wants(c, empty, w)
        loaded = await tables.load(conn, w, catalogue, published)
        if not any(isinstance(c, CompleteNeed) for c in commands):
            return loaded
        again = copy.deepcopy(w)
        for c in commands:  # what a loaded record names (a need's doer) is loaded in a second round
            wants(c, loaded[0], again)
        return loaded if again == w else await tables.load(conn, again, catalogue, published)


class _Working:
    """The state a batch decides on, moved forward by ``evolve`` after each command's append."""

    def __init__(self, state: State) -> None:
        self._state = state
        self.aggregates: dict[str, Aggregate | None] = {}
        for s in state.subjects.values():
            self.aggregates[f"subject-{s.subject_id}"] = s
        for c in state.communities.values():
            self.aggregates[f"community-{c.community_id}"] = c
        for n in state.needs.values():
            self.aggregates[f"need-{n.need_id}"] = n
        self.aggregates["catalogue"] = state.published
        self.before = dict(self.aggregates)
        self.subjects = dict(state.subjects)
        self.communities = dict(state.communities)
        self.needs = dict(state.needs)
        self.catalogue_changed = False

    def state(self) -> State:
        s = self._state
        return State(s.catalogue, self.communities, self.subjects, self.needs, s.certified, s.rosters,
                     s.published, s.unit_owners)

    def version(self, stream: str) -> int:
        agg = self.aggregates.get(stream)
        return 0 if agg is None else agg.version

    def apply(self, stream: str, events: list[Event]) -> None:
        agg = self.aggregates.get(stream)
        for ev in events:
            agg = evolve(agg, ev)
        self.aggregates[stream] = agg
        if isinstance(agg, Subject):
            self.subjects[agg.subject_id] = agg
        elif isinstance(agg, Community):
            self.communities[agg.community_id] = agg
        elif isinstance(agg, Need):
            self.needs[agg.need_id] = agg
        elif stream == "catalogue":
            self.catalogue_changed = True

    def changed(self) -> dict[str, Aggregate]:
        return {s: a for s, a in self.aggregates.items() if a is not None and a is not self.before.get(s)}


def only_this_site(events: list[Event], community: str) -> list[Event] | Rejected:
    """A site writes only its own community's events (the county's consumers refuse any other from it)."""
    others = sorted({c for e in events if (c := getattr(e, "community_id", community)) != community})
    if others:
        return Rejected(f"本站点只受理社区 {community} 的数据；社区 {'、'.join(others)} 的数据请在其所在社区的站点办理",
                        status=403, code="other_site", site_community=community)
    return events


def _by_stream(events: list[Event]) -> list[tuple[str, str, list[Event]]]:
    """Events grouped by stream, streams in order of first appearance (a head record before its items)."""
    groups: dict[str, tuple[str, list[Event]]] = {}
    for ev in events:
        stream, key = stream_of(ev)
        groups.setdefault(stream, (key, []))[1].append(ev)
    return [(stream, key, evs) for stream, (key, evs) in groups.items()]
