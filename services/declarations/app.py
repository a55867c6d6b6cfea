"""Composition root of the declarations service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from services.declarations import api, bulk_api, catalogue_api, ledger_api, roster_api, tables
from services.declarations.catalogue_store import CatalogueCache, seed_recorded
from services.declarations.certified import CertifiedMonths
from services.declarations.context import DeclarationsConfig, fixed_clock, wall_clock
from services.declarations.ledger import LedgerProjection
from services.declarations.pipeline import Pipeline
from shared.service import Runtime, create_app
from shared.settings import Settings
from shared.sites import this_site

READ_MODELS = (LedgerProjection, CertifiedMonths)  # what the service builds from the log (the auditor replays them)


def build(settings: Settings | None = None, config: DeclarationsConfig | None = None) -> FastAPI:
    config = config or DeclarationsConfig()
    routers = [api.router, roster_api.router, bulk_api.router, catalogue_api.router, ledger_api.router]
    try:
        from services.declarations.web import router as web_router
    except ImportError:  # the recorder's page is optional
        pass
    else:
        routers.append(web_router)
    app = create_app("declarations", routers=routers, projection_list=[p() for p in READ_MODELS],
                     schema=tables.SCHEMA, settings=settings, title="积分申报服务 declarations")
    app.state.clock = fixed_clock(config.now) if config.now else wall_clock
    shared_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with shared_lifespan(app):
            rt: Runtime = app.state.runtime
            cache = app.state.catalogue = CatalogueCache(rt.store)
            await cache.seed(rt.pool, config.rules_file, seed_recorded(app.state.clock()))
            site = this_site(rt.settings)
            app.state.pipeline = Pipeline(rt.pool, rt.store, cache,
                                          community=None if site is None else site.community_id)
            try:
                yield
            finally:
                await app.state.pipeline.stop()  # before the pool closes

    app.router.lifespan_context = lifespan
    return app
