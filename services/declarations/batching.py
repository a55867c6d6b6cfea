"""Group commit for declarations: concurrent POST /declarations share one transaction.

Each commit costs a WAL flush and each statement a round trip; under load, requests queue up
while a batch is in flight, and the next batch takes them all (no artificial wait). Semantics
per request are unchanged: its own idempotency key, its own decision (the cap counts earlier
items of the same batch), its own answer or refusal. If a batch fails as a whole (a database
error, a deadlock), every request in it is retried on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from services.declarations.domain.catalogue import RuleCatalogue
from services.declarations.domain.intake import Actor, Facts, ItemRequest, decide_declaration
from services.declarations.tables import subject_from_row
from shared.commands import Rejected
from shared.events.declarations import DeclarationSubmitted
from shared.logging import get_logger
from shared.service import Runtime
from shared.store import Recorded

log = get_logger("declarations.batching")
Answer = tuple[int, dict[str, Any], bool]  # status, response, replayed


@dataclass
class Pending:
    key: str
    fingerprint: str
    req: ItemRequest
    channel: str
    actor: Actor
    today: dt.date
    recorded: Recorded
    single: Callable[[], Awaitable[Answer]]  # the one-by-one path, for a failed batch
    future: asyncio.Future[Answer] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Batcher:
    def __init__(self, rt: Runtime, catalogue: RuleCatalogue, *, workers: int = 4, max_batch: int = 256) -> None:
        self.rt = rt
        self.catalogue = catalogue
        self.queue: asyncio.Queue[Pending] = asyncio.Queue()
        self.max_batch = max_batch
        self.tasks = [asyncio.create_task(self._worker()) for _ in range(workers)]
        self.batches = 0

    async def submit(self, p: Pending) -> Answer:
        await self.queue.put(p)
        return await p.future

    async def _worker(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                results = await self._run(batch)
            except Exception as exc:  # the batch as a whole failed: each request on its own
                log.warning("declarations.batch_failed", size=len(batch), error=repr(exc))
                await asyncio.gather(*(self._alone(p) for p in batch))
                continue
            for p, result in zip(batch, results, strict=True):
                if p.future.done():
                    continue
                if isinstance(result, Exception):
                    p.future.set_exception(result)
                else:
                    p.future.set_result(result)

    async def _alone(self, p: Pending) -> None:
        try:
            p.future.set_result(await p.single())
        except Exception as exc:
            if not p.future.done():
                p.future.set_exception(exc)

    async def _run(self, batch: list[Pending]) -> list[Answer | Exception]:
        self.batches += 1
        results: list[Answer | Exception | None] = [None] * len(batch)
        first: dict[str, int] = {}
        for i, p in enumerate(batch):  # the same key twice in one batch: the later one replays the first
            first.setdefault(p.key, i)
        async with self.rt.pool.acquire() as conn, conn.transaction():
            claimed = {r["idempotency_key"] for r in await conn.fetch(
                """insert into command_log (idempotency_key, fingerprint)
                   select * from unnest($1::text[], $2::text[]) on conflict do nothing returning idempotency_key""",
                [p.key for i, p in enumerate(batch) if first[p.key] == i],
                [p.fingerprint for i, p in enumerate(batch) if first[p.key] == i])}
            todo = [i for i, p in enumerate(batch) if p.key in claimed and first[p.key] == i]
            await self._replays(conn, batch, [i for i in range(len(batch)) if batch[i].key not in claimed], results)
            await self._decide_and_append(conn, batch, todo, results)
        for i, p in enumerate(batch):  # in-batch repeats of a key get the first one's answer
            j = first[p.key]
            if j != i:
                r = results[j]
                if isinstance(r, tuple) and p.fingerprint == batch[j].fingerprint:
                    results[i] = (r[0], r[1], True)
                elif isinstance(r, tuple):
                    results[i] = _reused()
                else:
                    results[i] = r
        return [r if r is not None else RuntimeError("no answer") for r in results]

    async def _replays(self, conn: asyncpg.Connection, batch: list[Pending], idx: list[int],
                       results: list[Answer | Exception | None]) -> None:
        if not idx:
            return
        rows = {r["idempotency_key"]: r for r in await conn.fetch(
            "select idempotency_key, fingerprint, status, response from command_log "
            "where idempotency_key = any($1::text[])", [batch[i].key for i in idx])}
        for i in idx:
            row = rows.get(batch[i].key)
            if row is None or row["status"] is None:
                results[i] = RuntimeError("idempotency key vanished")  # retried on its own
                raise RuntimeError("idempotency key in flight elsewhere")
            if row["fingerprint"] != batch[i].fingerprint:
                results[i] = _reused()
            else:
                results[i] = (row["status"], orjson.loads(row["response"]), True)

    async def _decide_and_append(self, conn: asyncpg.Connection, batch: list[Pending], todo: list[int],
                                 results: list[Answer | Exception | None]) -> None:
        if not todo:
            return
        reqs = [batch[i].req for i in todo]
        subjects = {r["subject_id"]: subject_from_row(r) for r in await conn.fetch(
            "select * from subjects where subject_id = any($1::text[])", list({r.subject_id for r in reqs}))}
        usage_keys = sorted({(r.subject_id, r.rule_code, r.occurred_on.strftime("%Y-%m")) for r in reqs
                             if r.subject_id in subjects})  # sorted: batches lock usage rows in one order
        used = {(r["subject_id"], r["rule_code"], r["month"]): r["points"] for r in await conn.fetch(
            """insert into monthly_usage (subject_id, rule_code, month, points)
               select *, 0 from unnest($1::text[], $2::text[], $3::text[])
               on conflict (subject_id, rule_code, month) do update set points = monthly_usage.points
               returning subject_id, rule_code, month, points""",
            [k[0] for k in usage_keys], [k[1] for k in usage_keys], [k[2] for k in usage_keys])}
        communities = {r["community_id"] for r in await conn.fetch(
            "select community_id from communities where community_id = any($1::text[])",
            list({r.community_id for r in reqs}))}
        closed = {(r["community_id"], r["month"]) for r in await conn.fetch(
            "select community_id, month from certified_months where community_id = any($1::text[])",
            list({r.community_id for r in reqs}))}
        accepted: list[tuple[int, DeclarationSubmitted]] = []
        refused: list[str] = []
        for i in todo:
            p = batch[i]
            month = p.req.occurred_on.strftime("%Y-%m")
            ukey = (p.req.subject_id, p.req.rule_code, month)
            facts = Facts(p.today, p.req.community_id in communities, (p.req.community_id, month) in closed,
                          subjects.get(p.req.subject_id), used.get(ukey, 0))
            try:
                item = decide_declaration(p.req, p.channel, p.actor, facts, self.catalogue, str(uuid.uuid4()))
            except Rejected as exc:
                results[i] = exc
                refused.append(p.key)
                continue
            used[ukey] = used.get(ukey, 0) + abs(item.points)  # the next item in this batch sees it
            accepted.append((i, item))
        if refused:  # a refusal leaves no trace: the key may be used again for a fixed request
            await conn.execute("delete from command_log where idempotency_key = any($1::text[])", refused)
        if not accepted:
            return
        envs = await self.rt.store.append_new_streams(
            conn, [(f"item-{item.item_id}", [item], item.subject_id, batch[i].recorded) for i, item in accepted])
        totals: dict[tuple[str, str, str], int] = {}
        for _, item in accepted:
            k = (item.subject_id, item.rule_code, item.occurred_on.strftime("%Y-%m"))
            totals[k] = totals.get(k, 0) + abs(item.points)
        await conn.execute(
            """update monthly_usage m set points = m.points + u.p
               from unnest($1::text[], $2::text[], $3::text[], $4::int[]) as u(s, r, mo, p)
               where m.subject_id = u.s and m.rule_code = u.r and m.month = u.mo""",
            [k[0] for k in totals], [k[1] for k in totals], [k[2] for k in totals], list(totals.values()))
        answers = []
        for (i, item), env in zip(accepted, envs, strict=True):
            response = {"item_id": item.item_id, "points": item.points, "event_ids": [str(e.id) for e in env]}
            results[i] = (201, response, False)
            answers.append((batch[i].key, orjson.dumps(response).decode()))
        await conn.execute(
            """update command_log c set status = 201, response = u.r::jsonb
               from unnest($1::text[], $2::text[]) as u(k, r) where c.idempotency_key = u.k""",
            [a[0] for a in answers], [a[1] for a in answers])


def _reused() -> Rejected:
    return Rejected("幂等键已用于另一个不同的请求，请换一个新的幂等键", status=409, code="idempotency_key_reused")


def batcher_for(app_state: Any) -> Batcher:
    """One batcher per app, created on first use (it needs the running loop and the runtime)."""
    b: Batcher | None = getattr(app_state, "batcher", None)
    if b is None:
        b = Batcher(app_state.runtime, app_state.catalogue)
        app_state.batcher = b
    return b


async def stop(app_state: Any) -> None:
    """At shutdown: let queued requests finish, then stop the workers."""
    b: Batcher | None = getattr(app_state, "batcher", None)
    if b is None:
        return
    for _ in range(100):
        if b.queue.empty():
            break
        await asyncio.sleep(0.05)
    for task in b.tasks:
        task.cancel()
    for task in b.tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    app_state.batcher = None
