"""The county admin publishes a catalogue version (rules, caps, weights, effective month) as an event."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field

from services.declarations.api import Id
from services.declarations.context import Me, context
from services.declarations.domain.commands import PublishCatalogue
from shared.auth import Role, require_role
from shared.events import Event
from shared.events.declarations import CatalogueVersionPublished, RuleDefinition
from shared.http import OPEN, IdempotencyKey, RequestBody

router = APIRouter(tags=["catalogue"])
Month = Annotated[str, Field(pattern=r"^20[2-9][0-9]-(0[1-9]|1[0-2])$", examples=["2027-01"])]
Text = Annotated[str, Field(min_length=1, max_length=200)]


class RuleBody(RequestBody):
    code: Id
    dimension: Annotated[str, Field(max_length=64)]
    title: Text
    categories: list[Annotated[str, Field(max_length=64)]] = Field(min_length=1, max_length=10)
    points_per_unit: int = Field(ge=-1000, le=1000)
    unit: Annotated[str, Field(min_length=1, max_length=20)]
    monthly_cap: int | None = Field(None, ge=1, le=100_000)
    evidence_required: bool = False
    recorded_by: list[Annotated[str, Field(max_length=32)]] = Field(min_length=1, max_length=9)
    weight: Decimal = Field(Decimal(1), gt=0, le=10, max_digits=6, decimal_places=3)
    max_quantity: int = Field(10, ge=1, le=1000)


class CatalogueBody(RequestBody):
    effective_month: Month
    rules: list[RuleBody] = Field(min_length=1, max_length=500)
    note: str = Field("", max_length=500)


@router.post("/catalogue/versions", status_code=201)
async def publish(body: CatalogueBody, request: Request, principal: Me, idempotency_key: IdempotencyKey) -> Response:
    """A whole new catalogue version, in force from ``effective_month`` (next month at the earliest)."""
    require_role(principal, Role.county_admin)
    ctx = context(request, principal)
    rules = tuple(RuleDefinition(**r.model_dump()) for r in body.rules)
    command = PublishCatalogue(ctx.actor, ctx.today, body.effective_month, rules, body.note)

    def respond(events: list[Event], event_ids: list[str]) -> tuple[int, dict[str, Any]]:
        ev = events[0]
        assert isinstance(ev, CatalogueVersionPublished)
        return 201, {"version": ev.version, "effective_month": ev.effective_month, "rules": len(ev.rules),
                     "event_ids": event_ids}

    return await ctx.run(command, "publish_catalogue", idempotency_key, body.model_dump(mode="json"), respond)


@router.get("/catalogue/versions", openapi_extra=OPEN)
async def versions(request: Request) -> dict[str, Any]:
    """Every published version, oldest first (what a replay scores items by)."""
    async with request.app.state.runtime.pool.acquire() as conn:
        _, published = await request.app.state.catalogue.current(conn)
    return {"versions": [{"version": v.version, "effective_month": v.effective_month, "rules": len(v.rules),
                          "published_by": v.published_by, "note": v.note} for v in published.published]}
