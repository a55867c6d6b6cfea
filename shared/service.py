"""The composition root every service shares: pool, schema, relay, projections, HTTP app."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import asyncpg
from fastapi import APIRouter, FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from shared import http, store
from shared import projection as projections
from shared.background import supervise
from shared.envelope import source_for
from shared.events import load_catalogue
from shared.logging import configure_logging, get_logger
from shared.projection import Projection, ProjectionRunner, tune_gc
from shared.relay import Relay
from shared.settings import InsecureSecrets, Settings, check_secrets, get_settings
from shared.topics import BY_SERVICE

log = get_logger("service")


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    store: store.EventStore
    runners: dict[str, ProjectionRunner] = field(default_factory=dict)
    relay: Relay | None = None
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)


def create_app(
    name: str,
    *,
    routers: Sequence[APIRouter] = (),
    projection_list: Sequence[Projection] = (),
    schema: str = "",
    settings: Settings | None = None,
    title: str = "",
) -> FastAPI:
    settings = settings or get_settings()
    load_catalogue()
    configure_logging(name)
    stop = asyncio.Event()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(settings.database_url, min_size=2, max_size=20)
        async with pool.acquire() as conn:
            await conn.execute("select pg_advisory_lock(7420000)")  # one migrator at a time
            await store.migrate(conn)
            for p in projection_list:
                await projections.migrate(conn, p)
            if schema:
                await conn.execute(schema)
            await conn.execute("select pg_advisory_unlock(7420000)")
        rt = Runtime(settings=settings, pool=pool,
                     store=store.EventStore(source_for(name, settings), BY_SERVICE[name].name(settings)))
        app.state.runtime = rt
        if settings.run_relay:
            relay = rt.relay = Relay(pool, settings, source_for(name, settings))
            rt.tasks["relay"] = asyncio.create_task(supervise("relay", partial(relay.run, stop), stop))
        if settings.run_projections:
            for p in projection_list:
                runner = ProjectionRunner(pool, p, settings)
                rt.runners[p.name] = runner
                rt.tasks[p.name] = asyncio.create_task(supervise(p.name, partial(runner.run, stop), stop))
        log.info("service.started", port=settings.http_port)
        tune_gc()  # the modules, routes and catalogue are never garbage: full collections stop rescanning them
        try:
            yield
        finally:
            stop.set()
            for task in rt.tasks.values():
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(task, 10)
            await pool.close()

    app = FastAPI(title=title or name, lifespan=lifespan)
    http.install(app, max_body_bytes=settings.max_body_bytes)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "service": name}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        rt: Runtime = app.state.runtime
        body: dict[str, Any] = {"service": name}
        ok = True
        try:
            body["database"] = await rt.pool.fetchval("select 'ok'")
            body["unpublished_events"] = await rt.pool.fetchval(
                "select count(*) from events where published_at is null")
        except Exception as exc:
            ok, body["database"] = False, repr(exc)
        body["relay"] = "off" if rt.relay is None else ("running" if not rt.tasks["relay"].done() else "stopped")
        body["projections"] = {}
        for pname, runner in rt.runners.items():
            body["projections"][pname] = {"assigned": runner.ready.is_set(), "lag": await runner.lag(),
                                          "applied": runner.applied, "dead_lettered": runner.dead_lettered,
                                          "discarded": runner.discarded, "retried": runner.retried,
                                          "group_id": runner.group_id}
            ok = ok and not rt.tasks[pname].done()
        body["status"] = "ready" if ok else "not ready"
        return JSONResponse(jsonable_encoder(body), status_code=200 if ok else 503)

    for router in routers:
        app.include_router(router)
    return app


def serve(app: FastAPI, settings: Settings | None = None) -> None:
    import uvicorn

    settings = settings or get_settings()
    try:
        check_secrets(settings)  # a missing or well-known secret: one line on stderr, exit 2
    except InsecureSecrets as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False)
