"""Composition root of the review service."""

from __future__ import annotations

from fastapi import FastAPI

from shared.service import create_app
from shared.settings import Settings


def build(settings: Settings | None = None) -> FastAPI:
    return create_app("review", settings=settings)
