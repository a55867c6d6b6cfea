"""Composition root of the declarations service."""

from __future__ import annotations

from fastapi import FastAPI

from services.declarations.api import router
from services.declarations.ledger import LedgerProjection
from shared.service import create_app
from shared.settings import Settings


def build(settings: Settings | None = None) -> FastAPI:
    return create_app("declarations", routers=[router], projection_list=[LedgerProjection()],
                      settings=settings, title="积分申报服务 declarations")
