"""Composition root of the review service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from functools import partial

from fastapi import FastAPI

from services.review import api, late_items, pages
from services.review.board import BoardProjection
from services.review.items import ItemsProjection
from services.review.state import SCHEMA
from shared.background import supervise
from shared.service import Runtime, create_app
from shared.settings import Settings

READ_MODELS = (ItemsProjection, BoardProjection)  # what the service builds from the log (the auditor replays them)


def build(settings: Settings | None = None) -> FastAPI:
    app = create_app("review", routers=[api.router, pages.router],
                     projection_list=[p() for p in READ_MODELS], schema=SCHEMA, settings=settings,
                     title="审核认定服务 review")
    shared_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        async with shared_lifespan(a):
            rt: Runtime = a.state.runtime
            stop = asyncio.Event()
            task = asyncio.create_task(supervise(
                "late_items", partial(late_items.run, rt.pool, rt.store, rt.settings.timezone, stop), stop))
            rt.tasks["late_items"] = task
            try:
                yield
            finally:
                stop.set()
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(task, 10)

    app.router.lifespan_context = lifespan
    return app
