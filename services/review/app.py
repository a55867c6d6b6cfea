"""Composition root of the review service."""

from __future__ import annotations

from fastapi import FastAPI

from services.review import api, pages
from services.review.board import BoardProjection
from services.review.items import ItemsProjection
from services.review.state import SCHEMA
from shared.service import create_app
from shared.settings import Settings


def build(settings: Settings | None = None) -> FastAPI:
    return create_app("review", routers=[api.router, pages.router],
                      projection_list=[ItemsProjection(), BoardProjection()], schema=SCHEMA, settings=settings,
                      title="审核认定服务 review")
