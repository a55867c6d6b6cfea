"""Group commit for the counters: commands queue, one worker takes everything queued into one
transaction (one WAL flush, one log-lock acquisition, one append for many redemptions).

Per command, in that transaction: claim the idempotency key (county-wide; a concurrent duplicate
in another process blocks on the key row until the first commits, then reads its answer), run
the handler (row locks, decide, apply), and store the answer, a refusal included (domain.md:
"the same key with the same content returns the first answer, a refusal included"). A key
reused with other content is refused and nothing is stored. The events of all accepted commands
are appended together at the end. A deadlock or serialization failure (another process locked
in another order) decides the whole batch again; any other failure runs the batch one command at
a time so only the culprit fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from services.exchange.handlers import Decided
from services.exchange.held import Held
from shared.errors import Rejected, conflict, key_reused
from shared.http import error_body
from shared.logging import get_logger
from shared.store import ConcurrencyError, EventStore, Recorded

log = get_logger("exchange.counter")
ATTEMPTS = 4
Answer = tuple[int, dict[str, Any]]


@dataclass
class Job:
    key: str
    fingerprint: str
    work: Callable[[asyncpg.Connection, Held], Awaitable[Decided]]
    recorded: Recorded
    member_code: str = ""  # a redemption's shopper and items: locked for the whole batch up front
    item_ids: tuple[str, ...] = ()
    future: asyncio.Future[Answer] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Counter:
    def __init__(self, pool: asyncpg.Pool, store: EventStore, *, max_batch: int = 200) -> None:
        self.pool, self.store, self.max_batch = pool, store, max_batch
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.batches = self.retries = 0

    async def submit(self, job: Job) -> Answer:
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._worker())
        await self.queue.put(job)
        return await job.future

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _worker(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            first: list[Job] = []
            later: list[Job] = []
            seen: set[str] = set()
            for job in batch:  # a key twice in one batch: the second waits for the first's stored answer
                (later if job.key in seen else first).append(job)
                seen.add(job.key)
            await self._run(first)
            if later:
                await self._run(later)

    async def _run(self, jobs: list[Job]) -> None:
        for _ in range(ATTEMPTS):
            try:
                answers = await self._once(jobs)
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError, ConcurrencyError):
                self.retries += 1
                continue
            except Exception as exc:
                if len(jobs) > 1:
                    for job in jobs:
                        await self._run([job])
                    return
                log.error("exchange.command_failed", error=repr(exc))
                if not jobs[0].future.done():
                    jobs[0].future.set_exception(exc)
                return
            for job, answer in zip(jobs, answers, strict=True):
                if not job.future.done():
                    job.future.set_result(answer)
            return
        refusal = conflict(ATTEMPTS)
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(refusal)

    async def _once(self, jobs: list[Job]) -> list[Answer]:
        self.batches += 1
        answers: list[Answer | None] = [None] * len(jobs)
        accepted: list[tuple[int, Job, Decided]] = []
        held = Held()
        async with self.pool.acquire() as conn, conn.transaction():
            claimed = {r["idempotency_key"] for r in await conn.fetch(
                """insert into command_log (idempotency_key, fingerprint) select * from unnest($1::text[], $2::text[])
                   on conflict (idempotency_key) do nothing returning idempotency_key""",
                [j.key for j in jobs], [j.fingerprint for j in jobs])}
            if len(claimed) < len(jobs):
                stored = {r["idempotency_key"]: r for r in await conn.fetch(
                    "select * from command_log where idempotency_key = any($1)",
                    [j.key for j in jobs if j.key not in claimed])}
            fresh = [j for j in jobs if j.key in claimed]
            await held.preload(conn, [j.member_code for j in fresh if j.member_code],
                               sorted({i for j in fresh for i in j.item_ids}))
            for n, job in enumerate(jobs):
                if job.key not in claimed:
                    row = stored[job.key]
                    if row["fingerprint"] != job.fingerprint:
                        refusal = key_reused()
                        answers[n] = (refusal.status, error_body(refusal.code, refusal.reason))
                    else:
                        answers[n] = (row["status"], orjson.loads(row["response"]))
                    continue
                try:
                    decided = await job.work(conn, held)
                except Rejected as refusal:  # raised before anything was written
                    answers[n] = (refusal.status, error_body(refusal.code, refusal.reason, **refusal.detail))
                    continue
                accepted.append((n, job, decided))
            await held.write(conn)
            envelopes = await self.store.append_many(
                conn, [(d.stream, d.version, d.events, d.key, job.recorded) for _, job, d in accepted]
            ) if accepted else []
            for (n, _, decided), batch in zip(accepted, envelopes, strict=True):
                answers[n] = (201, decided.answer | {"event_ids": [str(e.id) for e in batch]})
            done = [(job.key, answer[0], orjson.dumps(answer[1]).decode())
                    for job, answer in zip(jobs, answers, strict=True) if answer is not None and job.key in claimed]
            await conn.executemany("""update command_log set status = $2, response = $3::jsonb
                                      where idempotency_key = $1""", done)
        return [a for a in answers if a is not None]
