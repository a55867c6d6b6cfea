"""Running a command: one transaction, an idempotency key, the first answer returned on repeat."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson

from shared.errors import Rejected, key_reused

__all__ = ["Rejected", "fingerprint", "run_idempotent"]  # Rejected lives in shared.errors (no I/O)


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


Work = Callable[[asyncpg.Connection], Awaitable[tuple[int, dict[str, Any]]]]


async def run_idempotent(
    pool: asyncpg.Pool, idempotency_key: str, request_fingerprint: str, work: Work
) -> tuple[int, dict[str, Any], bool]:
    """Returns (status, response, replayed).

    The key row is inserted first: a concurrent duplicate blocks on it until the first commits,
    then reads the stored answer. A rejected command rolls back and leaves no trace, so the
    caller can fix the request and retry with the same key.
    """
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            """insert into command_log (idempotency_key, fingerprint) values ($1, $2)
               on conflict (idempotency_key) do nothing returning true""",
            idempotency_key, request_fingerprint,
        )
        if not inserted:
            row = await conn.fetchrow(
                "select fingerprint, status, response from command_log where idempotency_key = $1",
                idempotency_key,
            )
            if row["fingerprint"] != request_fingerprint:
                raise key_reused()
            return row["status"], orjson.loads(row["response"]), True
        status, response = await work(conn)
        await conn.execute(
            "update command_log set status = $2, response = $3::jsonb where idempotency_key = $1",
            idempotency_key, status, orjson.dumps(response).decode(),
        )
        return status, response, False
