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

The worker is every request's critical path and each round trip waits behind whatever else the
event loop is doing (parsing requests, the relay, the projection), so a batch costs few of them:
begin, open (claims, stored answers, shoppers and shelves: ``exchange_counter_open``), the write,
the append (log head, insert), the answers, commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from services.exchange import state
from services.exchange.handlers import Decided
from services.exchange.held import Held
from shared.errors import Rejected, conflict, key_reused
from shared.http import error_body
from shared.logging import get_logger
from shared.store import ConcurrencyError, EventStore, Recorded

log = get_logger("exchange.counter")

# A batch opens in one round trip: claim the keys (a key another transaction holds waits for its
# commit, then reads as stored), read the answers stored under the others, then lock and read the
# shoppers of the claimed requests and the shelves (tables.py: balances, then stock, each in id order).
SCHEMA = """
create or replace function exchange_counter_open(p_keys text[], p_prints text[], p_codes text[], p_items text[])
returns table (kind text, body jsonb) language plpgsql volatile as $$
declare
    v_claimed text[];
begin
    with claimed as (insert into command_log (idempotency_key, fingerprint) select * from unnest(p_keys, p_prints)
                     on conflict (idempotency_key) do nothing returning idempotency_key)
    select coalesce(array_agg(idempotency_key), '{}') into v_claimed from claimed;
    return query select 'claimed', to_jsonb(k) from unnest(v_claimed) k;
    return query select 'stored', jsonb_build_object('key', c.idempotency_key, 'fingerprint', c.fingerprint,
                                                     'status', c.status, 'response', c.response)
                   from command_log c where c.idempotency_key = any(p_keys) and c.idempotency_key <> all(v_claimed);
    return query select 'shopper', to_jsonb(s) from exchange_shoppers(array(
                   select distinct u.code from unnest(p_keys, p_codes) u(key, code)
                    where u.key = any(v_claimed) and u.code <> '' order by u.code), p_items) s;
    return query select 'shelf', to_jsonb(s) from exchange_shelves(p_items) s;
end $$;
"""
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
        self.conn: asyncpg.Connection | None = None
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
        if self.conn is not None:
            await self.pool.release(self.conn)
            self.conn = None

    async def _connection(self) -> asyncpg.Connection:
        """The worker's own connection, kept between batches: giving it back to the pool costs a
        round trip (the pool resets it), and the worker is every batch's critical path."""
        if self.conn is not None and self.conn.is_closed():
            await self.pool.release(self.conn)
            self.conn = None
        if self.conn is None:
            self.conn = await self.pool.acquire()
        return self.conn

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
        conn = await self._connection()
        async with conn.transaction():
            opened = await conn.fetch("select kind, body from exchange_counter_open($1, $2, $3, $4)",
                                      [j.key for j in jobs], [j.fingerprint for j in jobs],
                                      [j.member_code for j in jobs], sorted({i for j in jobs for i in j.item_ids}))
            claimed: set[str] = set()
            stored: dict[str, dict[str, Any]] = {}
            held = Held()
            for kind, body in opened:
                row = orjson.loads(body)
                if kind == "claimed":
                    claimed.add(row)
                elif kind == "stored":
                    stored[row["key"]] = row
                elif kind == "shopper":
                    held.shoppers[row["member_code"]] = state.shopper(row)
                else:
                    held.shelves[row["item_id"]] = state.shelf(row)
            for n, job in enumerate(jobs):
                if job.key not in claimed:
                    row = stored[job.key]
                    if row["fingerprint"] != job.fingerprint:
                        refusal = key_reused()
                        answers[n] = (refusal.status, error_body(refusal.code, refusal.reason))
                    else:
                        answers[n] = (row["status"], row["response"])
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
            done = [(job, answer) for job, answer in zip(jobs, answers, strict=True)
                    if answer is not None and job.key in claimed]
            if done:
                await conn.execute("""update command_log c set status = u.status, response = u.response::jsonb
                                      from unnest($1::text[], $2::int[], $3::text[]) as u(key, status, response)
                                      where c.idempotency_key = u.key""",
                                   [job.key for job, _ in done], [status for _, (status, _) in done],
                                   [orjson.dumps(body).decode() for _, (_, body) in done])
        return [a for a in answers if a is not None]
