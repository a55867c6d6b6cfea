"""Composition root of the exchange service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from services.exchange import api, pages
from services.exchange.counter import Counter
from services.exchange.projection import ExchangeProjection
from shared.service import Runtime, create_app
from shared.settings import Settings

# What the service builds from the log (the auditor replays it): the state its decisions lock, too.
READ_MODELS = (ExchangeProjection,)


def build(settings: Settings | None = None) -> FastAPI:
    app = create_app("exchange", routers=[api.router, pages.router], projection_list=[p() for p in READ_MODELS],
                     settings=settings, title="爱心超市服务 exchange")
    shared_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        async with shared_lifespan(a):
            rt: Runtime = a.state.runtime
            a.state.counter = Counter(rt.pool, rt.store)
            try:
                yield
            finally:
                await a.state.counter.stop()

    app.router.lifespan_context = lifespan
    return app
