"""Composition root of the ranking service."""

from __future__ import annotations

from fastapi import FastAPI

from services.ranking import api, feed, leaderboard, pages
from services.ranking.emit import Emitter
from services.ranking.projection import RankingProjection
from services.ranking.tables import SERVICE
from shared.envelope import source_for
from shared.service import create_app
from shared.settings import Settings, get_settings
from shared.store import EventStore
from shared.topics import RANKING

READ_MODELS = (RankingProjection,)  # what the service builds from the log (the auditor replays them, without emitter)


def build(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    store = EventStore(source_for("ranking", settings), RANKING.name(settings))
    app = create_app("ranking", routers=[api.router, pages.router, feed.router],
                     projection_list=[RankingProjection(Emitter(store))], schema=SERVICE, settings=settings,
                     title="排名服务 ranking")
    feed.install(app, settings)
    leaderboard.install(app, settings)
    return app
