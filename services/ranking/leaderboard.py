"""GET /rankings answered from memory while the ranking read model stands still.

A leaderboard is read far more often than it changes. The first request of each query string goes
through the whole route (validation, the database, JSON); the bytes of its 200 answer are kept and
sent as they are to the same query string until the projection commits a recompute (it notifies
``CHANNEL`` in that transaction; the service LISTENs) or a swap puts a rebuild live (``SWAPPED``),
and for at most ``MAX_AGE_S`` as a safety net: then one request reads it again while the others
still get the kept answer (no stampede of hundreds of identical queries). Nothing is kept while
the listener is down, nor an answer read while a change was announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logging import get_logger
from shared.replay import SWAPPED
from shared.settings import Settings

log = get_logger("ranking.leaderboard")
CHANNEL = "rk_rankings_changed"
MAX_AGE_S = 60.0
PATH = "/rankings"


class Answers:
    """The kept answers by query string, and a generation that moves on every announced change."""

    def __init__(self) -> None:
        self.kept: dict[bytes, tuple[float, bytes]] = {}
        self.reading: set[bytes] = set()  # expired answers being read again
        self.generation = 0
        self.listening = False

    def changed(self, *_: Any) -> None:
        self.generation += 1
        self.kept.clear()

    async def listen(self, dsn: str, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            lost = asyncio.Event()
            conn = None
            try:
                conn = await asyncpg.connect(dsn)
                conn.add_termination_listener(lambda _, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self.changed)
                await conn.add_listener(SWAPPED, self.changed)
                self.changed()
                self.listening, delay = True, 0.5
                stopped = asyncio.ensure_future(stop.wait())
                gone = asyncio.ensure_future(lost.wait())
                await asyncio.wait((stopped, gone), return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                gone.cancel()
            except Exception as exc:
                log.error("leaderboard.listen_failed", error=repr(exc), retry_in_s=delay)
            finally:
                self.listening = False
                self.changed()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 10)


class KeptLeaderboards:
    """ASGI middleware: a kept answer for GET /rankings, else the route (and keep its 200 answer)."""

    def __init__(self, app: ASGIApp, answers: Answers) -> None:
        self.app, self.answers = app, answers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        key, now, answers = scope["query_string"], time.monotonic(), self.answers
        kept = answers.kept.get(key)
        if kept is not None and (now - kept[0] < MAX_AGE_S or key in answers.reading):
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-length", str(len(kept[1])).encode()), (b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": kept[1]})
            return
        generation, status, body = answers.generation, [0], bytearray()

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
            await send(message)

        answers.reading.add(key)
        try:
            await self.app(scope, receive, keep)
        finally:
            answers.reading.discard(key)
        if status[0] == 200 and answers.listening and generation == answers.generation:
            if len(answers.kept) > 10_000:
                answers.kept.clear()
            answers.kept[key] = (now, bytes(body))


def install(app: FastAPI, settings: Settings) -> None:
    answers = Answers()
    app.add_middleware(KeptLeaderboards, answers=answers)
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        async with inner(a):
            stop = asyncio.Event()
            task = asyncio.create_task(answers.listen(settings.database_url, stop))
            try:
                yield
            finally:
                stop.set()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(task, 5)

    app.router.lifespan_context = lifespan
