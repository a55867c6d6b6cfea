"""The dashboard feed: a faststream subscriber on the ranking topic, fanned out as server-sent events.

A live reader that owns no read model: it keeps no offsets and no state, so faststream's
default ack policy (acknowledge on consume: at most once) is fine *here* — a dashboard that
misses an event while the service restarts reloads the current ranking from GET /rankings.
It joins no consumer group (every instance reads every partition, from the latest offset) and
authenticates to Kafka with the service's own credential (``shared.kafka.client_config``'s
settings): the ranking principal may read its own topic. The same broker generates the AsyncAPI
document of the topic and its events (GET /asyncapi.json). Projections never use faststream
(architecture.md: they own their offsets through shared/projection.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import StreamingResponse
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from faststream.specification import AsyncAPI

from shared.envelope import UndecodableRecord, decode
from shared.events.ranking import (
    ConsequenceGranted,
    ConsequenceWithdrawn,
    RankingChanged,
    RoleModelSelected,
    TalkHeld,
)
from shared.http import OPEN
from shared.logging import get_logger
from shared.settings import Settings
from shared.topics import RANKING

log = get_logger("ranking.feed")
router = APIRouter(tags=["feed"])
RankingEvents = RankingChanged | ConsequenceGranted | ConsequenceWithdrawn | TalkHeld | RoleModelSelected


def security(settings: Settings) -> BaseSecurity | None:
    """The SASL settings of ``shared.kafka.client_config`` in faststream's terms."""
    use_ssl = settings.kafka_security_protocol.upper() in ("SSL", "SASL_SSL")
    mechanism = (settings.kafka_sasl_mechanism or "").upper()
    user, password = settings.kafka_sasl_username or "", settings.kafka_sasl_password or ""
    if mechanism == "SCRAM-SHA-512":
        return SASLScram512(user, password, use_ssl=use_ssl)
    if mechanism == "SCRAM-SHA-256":
        return SASLScram256(user, password, use_ssl=use_ssl)
    if mechanism == "PLAIN":
        return SASLPlaintext(user, password, use_ssl=use_ssl)
    return BaseSecurity(use_ssl=use_ssl) if use_ssl else None


class Feed:
    """Fan-out to the connected SSE clients (bounded queues: a slow client drops, never blocks)."""

    def __init__(self, settings: Settings) -> None:
        self.broker = KafkaBroker(settings.kafka_bootstrap_servers.split(","), security=security(settings),
                                  client_id="ranking-feed", logger=None)
        self.clients: set[asyncio.Queue[bytes]] = set()
        topic = RANKING.name(settings)

        @self.broker.subscriber(topic, auto_offset_reset="latest", title=f"{topic}:dashboard",
                                description="排名、结果（可评优秀、提拔优先、取消资格）、谈话和最美选定事件，"
                                            "CloudEvents 1.0 二进制模式（ce_ 头），键为社区编号（全县排名为 county）。")
        async def on_ranking_event(body: RankingEvents, msg: KafkaMessage) -> None:
            if not self.clients:  # nobody watching: not decoded again (a county ranking's top is 10,000 entries)
                return
            raw = msg.raw_message
            try:
                env = decode(raw.headers, raw.key, raw.value)  # type: ignore[union-attr]
            except UndecodableRecord as exc:
                log.warning("feed.undecodable", reason=str(exc))
                return
            self.publish(env.type.rsplit(".", 2)[-2], {"id": str(env.id), "type": env.type, "time":
                                                      env.time.isoformat(), "data": env.event.model_dump(mode="json")})

        self.asyncapi = AsyncAPI(self.broker, title="排名服务事件 ranking events", version="1.0.0",
                                 description="Topic " + topic + ": " + RANKING.doc + " Key: " + RANKING.key)

    def publish(self, name: str, payload: dict[str, Any]) -> None:
        frame = f"event: {name}\ndata: ".encode() + orjson.dumps(payload) + b"\n\n"
        for q in list(self.clients):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(frame)

    async def stream(self, request: Request) -> AsyncIterator[bytes]:
        q: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1000)
        self.clients.add(q)
        try:
            yield b": connected\n\n"
            while not await request.is_disconnected():
                try:
                    yield await asyncio.wait_for(q.get(), 15)
                except TimeoutError:
                    yield b": keep-alive\n\n"
        finally:
            self.clients.discard(q)


def install(app: FastAPI, settings: Settings) -> None:
    """Start the broker with the app (a broker that cannot connect is retried, the app still serves)."""
    feed = app.state.feed = Feed(settings)
    inner = app.router.lifespan_context

    async def keep_started(stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                await feed.broker.start()
                return
            except Exception as exc:
                log.error("feed.start_failed", error=repr(exc), retry_in_s=delay)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 10)

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        async with inner(a):
            stop = asyncio.Event()
            task = asyncio.create_task(keep_started(stop))
            try:
                yield
            finally:
                stop.set()
                task.cancel()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await feed.broker.stop()

    app.router.lifespan_context = lifespan


@router.get("/feed", include_in_schema=False)
async def sse(request: Request) -> StreamingResponse:
    """Server-sent events: every ranking event as it reaches the topic (documented in /asyncapi.json)."""
    feed: Feed = request.app.state.feed
    return StreamingResponse(feed.stream(request), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


@router.get("/asyncapi.json", tags=["ops"], openapi_extra=OPEN)
async def asyncapi(request: Request) -> dict[str, Any]:
    """AsyncAPI 3.0 document of the ranking topic and its events, generated by faststream."""
    feed: Feed = request.app.state.feed
    return feed.asyncapi.to_specification().to_jsonable()  # type: ignore[no-any-return]
