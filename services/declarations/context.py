"""What every handler needs: the clock, the catalogue, the actor, and append-then-evolve.

The clock is injectable (``app.state.clock``; ``DECLARATIONS_NOW`` fixes it for a process) so
tests and demo replays can set "now"; the domain never reads it.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
import zoneinfo
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import orjson
from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.declarations import tables
from services.declarations.domain.catalogue import RuleCatalogue, catalogue_from_data
from services.declarations.domain.intake import Actor
from shared.auth import Principal, current_principal
from shared.commands import fingerprint, run_idempotent
from shared.events import Event
from shared.service import Runtime
from shared.store import Recorded

DEFAULT_RULES = Path(__file__).parent / "data" / "rules.json"


class DeclarationsConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DECLARATIONS_", extra="ignore")

    now: dt.datetime | None = None  # a fixed "now" (tests, demo replays); unset = the wall clock
    rules_file: Path = DEFAULT_RULES  # the county's rule catalogue (JSON, versions with effective months)


def load_catalogue(path: Path = DEFAULT_RULES) -> RuleCatalogue:
    return catalogue_from_data(json.loads(path.read_text(encoding="utf-8")))


def wall_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fixed_clock(now: dt.datetime) -> Callable[[], dt.datetime]:
    return lambda: now


async def _principal(request: Request) -> Principal:
    # shared.auth's dependency is a plain function, which FastAPI runs in a worker thread: a thread
    # hop per request for a few microseconds of HMAC. Awaited here, it stays on the event loop.
    return current_principal(request)


Me = Annotated[Principal, Depends(_principal)]


def actor_of(p: Principal) -> Actor:
    return Actor(sub=p.sub, role=p.role.value, community=p.community, subject_ids=tuple(p.subject_ids))


@dataclass
class Ctx:
    rt: Runtime
    actor: Actor
    now: dt.datetime
    today: dt.date  # the county's civil date
    catalogue: RuleCatalogue
    recorded: Recorded

    async def append(self, conn: asyncpg.Connection, stream: str, events: Sequence[Event], *, key: str,
                     new: bool = False) -> list[str]:
        """Append to one stream and fold the events into the write-side tables; returns event ids."""
        version = 0 if new else (await self.rt.store.stream_version(conn, stream))[0]
        envs = await self.rt.store.append(conn, stream, version, events, key=key, recorded=self.recorded)
        await tables.evolve(conn, events)
        return [str(e.id) for e in envs]


def context(request: Request, principal: Principal) -> Ctx:
    rt: Runtime = request.app.state.runtime
    now: dt.datetime = request.app.state.clock()
    today = now.astimezone(zoneinfo.ZoneInfo(rt.settings.timezone)).date()
    correlation = request.headers.get("x-correlation-id")
    try:
        correlation_id = uuid.UUID(correlation) if correlation else uuid.uuid4()
    except ValueError:
        correlation_id = uuid.uuid4()
    return Ctx(rt, actor_of(principal), now, today, request.app.state.catalogue,
               Recorded(actor=principal.sub, time=now, correlation_id=correlation_id))


Work = Callable[[asyncpg.Connection], Awaitable[tuple[int, dict[str, Any]]]]


def keyed(ctx: Ctx, command: str, key: str, payload: Any) -> tuple[str, str]:
    """The command log's key and the request's fingerprint (same key + other request = 409)."""
    return (f"declarations:{command}:{key}",
            fingerprint({"command": command, "actor": ctx.actor.sub, "payload": payload}))


def respond(status: int, response: dict[str, Any], replayed: bool) -> Response:
    return Response(orjson.dumps(response), status_code=status, media_type="application/json",
                    headers={"idempotent-replay": "true"} if replayed else None)


async def idempotent(ctx: Ctx, command: str, key: str, payload: Any, work: Work) -> Response:
    """Run ``work`` once per idempotency key; a repeat gets the first answer (same status)."""
    return respond(*await run_idempotent(ctx.rt.pool, *keyed(ctx, command, key, payload), work))
