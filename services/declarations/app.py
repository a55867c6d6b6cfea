"""Composition root of the declarations service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from services.declarations import api, batching, bulk_api, ledger_api, roster_api, tables
from services.declarations.certified import CertifiedMonths
from services.declarations.context import DeclarationsConfig, fixed_clock, load_catalogue, wall_clock
from services.declarations.ledger import LedgerProjection
from shared.service import create_app
from shared.settings import Settings


def build(settings: Settings | None = None, config: DeclarationsConfig | None = None) -> FastAPI:
    config = config or DeclarationsConfig()
    routers = [api.router, roster_api.router, bulk_api.router, ledger_api.router]
    try:
        from services.declarations.web import router as web_router
    except ImportError:  # the recorder's page is optional
        pass
    else:
        routers.append(web_router)
    app = create_app("declarations", routers=routers, projection_list=[LedgerProjection(), CertifiedMonths()],
                     schema=tables.SCHEMA, settings=settings, title="积分申报服务 declarations")
    app.state.catalogue = load_catalogue(config.rules_file)
    app.state.clock = fixed_clock(config.now) if config.now else wall_clock
    shared_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with shared_lifespan(app):
            try:
                yield
            finally:
                await batching.stop(app.state)  # before the pool closes

    app.router.lifespan_context = lifespan
    return app
