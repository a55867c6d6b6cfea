"""What every handler needs: the clock, the actor, and the one command pipeline.

The clock is injectable (``app.state.clock``; ``DECLARATIONS_NOW`` fixes it for a process) so
tests and demo replays can set "now"; the domain never reads it.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.declarations.domain.catalogue import RuleCatalogue, catalogue_from_data
from services.declarations.domain.commands import Command
from services.declarations.domain.intake import Actor
from services.declarations.pipeline import Job, Pipeline, Respond
from shared.auth import Principal, current_principal
from shared.commands import fingerprint
from shared.service import Runtime
from shared.store import Recorded

DEFAULT_RULES = Path(__file__).parent / "data" / "rules.json"


class DeclarationsConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DECLARATIONS_", extra="ignore")

    now: dt.datetime | None = None  # a fixed "now" (tests, demo replays); unset = the wall clock
    rules_file: Path = DEFAULT_RULES  # seeds an empty log's catalogue (version 1); afterwards the log rules


def load_catalogue(path: Path = DEFAULT_RULES) -> RuleCatalogue:
    """The seed file's catalogue, read the way the log's is (tests; the service reads the log)."""
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


@dataclass(frozen=True)
class Ctx:
    """Who asks, and when: what a handler passes into a command (the domain never reads the clock)."""

    actor: Actor
    now: dt.datetime
    today: dt.date  # the county's civil date
    recorded: Recorded
    pipeline: Pipeline

    def job(self, command: Command, name: str, idempotency_key: str, payload: Any, respond: Respond) -> Job:
        """``name`` scopes the key (the same key on two routes is two commands)."""
        key, fp = keyed(self, name, idempotency_key, payload)
        return Job(command, key, fp, self.recorded, respond)

    async def run(self, command: Command, name: str, idempotency_key: str, payload: Any,
                  respond: Respond) -> Response:
        return respond_http(*await self.pipeline.submit(self.job(command, name, idempotency_key, payload, respond)))


def context(request: Request, principal: Principal) -> Ctx:
    rt: Runtime = request.app.state.runtime
    now: dt.datetime = request.app.state.clock()
    today = now.astimezone(zoneinfo.ZoneInfo(rt.settings.timezone)).date()
    correlation = request.headers.get("x-correlation-id")
    try:
        correlation_id = uuid.UUID(correlation) if correlation else uuid.uuid4()
    except ValueError:
        correlation_id = uuid.uuid4()
    return Ctx(actor_of(principal), now, today, Recorded(actor=principal.sub, time=now, correlation_id=correlation_id),
               request.app.state.pipeline)


def keyed(ctx: Ctx, command: str, key: str, payload: Any) -> tuple[str, str]:
    """The command log's key and the request's fingerprint (same key + other request = 409)."""
    return (f"declarations:{command}:{key}",
            fingerprint({"command": command, "actor": ctx.actor.sub, "payload": payload}))


def respond_http(status: int, response: dict[str, Any], replayed: bool) -> Response:
    return Response(orjson.dumps(response), status_code=status, media_type="application/json",
                    headers={"idempotent-replay": "true"} if replayed else None)
