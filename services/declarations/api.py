"""HTTP commands and queries for single items: declarations, deductions, subjects and rules.

Thin: validate (pydantic), authorise, build the command, hand it to the pipeline (pipeline.py).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import Field, ValidationError

from services.declarations.context import Me, context
from services.declarations.domain.commands import Declare, Deduct
from services.declarations.domain.intake import ItemRequest
from shared.auth import Role, current_principal, require_community, require_role
from shared.events import Event
from shared.events.declarations import PointsItem
from shared.http import ID_PATTERN, MONTH_PATTERN, OPEN, IdempotencyKey, RequestBody, SchemeDate
from shared.vocabulary import CATEGORIES, as_json

router = APIRouter()
READERS = (Role.recorder, Role.supervisor, Role.leading_group, Role.secretary, Role.auditor, Role.county_admin)

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]
PathId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
QueryId = Annotated[str, Query(min_length=1, max_length=64, pattern=ID_PATTERN)]
CATEGORY_PATTERN = "^(" + "|".join(CATEGORIES) + ")$"
Evidence = Annotated[list[Annotated[str, Field(min_length=1, max_length=500)]], Field(max_length=20)]


class ItemBody(RequestBody):
    community_id: Id
    subject_id: Id
    rule_code: Id
    quantity: int = Field(1, ge=1, le=1000)
    occurred_on: SchemeDate
    evidence: Evidence = Field(default_factory=list)
    category: str | None = Field(None, max_length=32)

    def request(self, description: str) -> ItemRequest:
        return ItemRequest(self.community_id, self.subject_id, self.rule_code, self.quantity, self.occurred_on,
                           description, tuple(self.evidence), self.category)


class DeclareBody(ItemBody):
    channel: str = Field(min_length=1, max_length=32)
    description: str = Field("", max_length=2000)


class DeductBody(ItemBody):
    reason: str = Field(min_length=1, max_length=2000)


def answer(events: list[Event], event_ids: list[str]) -> tuple[int, dict[str, Any]]:
    item = events[0]
    assert isinstance(item, PointsItem)
    return 201, {"item_id": item.item_id, "points": item.points, "event_ids": event_ids}


_DECLARE_DOC = {
    "parameters": [{"name": "idempotency-key", "in": "header", "required": True,
                    "schema": {"type": "string", "minLength": 8, "maxLength": 128}}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": DeclareBody.model_json_schema()}}},
}


@router.post("/declarations", status_code=201, tags=["declarations"], openapi_extra=_DECLARE_DOC)
async def declare(request: Request) -> Response:
    """Declare one item (concurrent declarations are committed together: see pipeline.py).

    The hottest route: it reads and validates its inputs itself (same checks, same error answers
    as FastAPI's parameter handling) to spare the per-request dependency machinery.
    """
    principal = current_principal(request)
    idempotency_key = request.headers.get("idempotency-key", "")
    try:
        body = DeclareBody.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError([e | {"loc": ("body", *e["loc"])} for e in exc.errors()]) from exc
    if not 8 <= len(idempotency_key) <= 128:
        raise RequestValidationError([{"type": "string_too_short" if len(idempotency_key) < 8 else "string_too_long",
                                       "loc": ("header", "idempotency-key"), "msg": "", "input": idempotency_key}])
    ctx = context(request, principal)
    command = Declare(ctx.actor, ctx.today, body.request(body.description), body.channel, str(uuid.uuid4()))
    return await ctx.run(command, "declare", idempotency_key, body.model_dump(mode="json"), answer)


@router.post("/deductions", status_code=201, tags=["declarations"])
async def deduct(body: DeductBody, request: Request, principal: Me,
                 idempotency_key: IdempotencyKey) -> Response:
    ctx = context(request, principal)
    command = Deduct(ctx.actor, ctx.today, body.request(body.reason), body.reason, str(uuid.uuid4()))
    return await ctx.run(command, "deduct", idempotency_key, body.model_dump(mode="json"), answer)


@router.get("/subjects", tags=["roster"])
async def find_subjects(request: Request, principal: Me, community_id: QueryId,
                        q: Annotated[str, Query(max_length=100)] = "", include_moved_out: bool = False,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> dict[str, Any]:
    """Find a subject by name or id (recorders at the desk)."""
    require_role(principal, *READERS)
    require_community(principal, community_id)
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = await request.app.state.runtime.pool.fetch(
        """select * from subjects where community_id = $1 and (name ilike $2 or subject_id ilike $2)
           and ($3 or moved_out_on is null) order by subject_id limit $4""",
        community_id, pattern, include_moved_out, limit)
    return {"items": [{
        "subject_id": r["subject_id"], "name": r["name"], "categories": list(r["categories"]),
        "category_titles": [CATEGORIES.get(c, c) for c in r["categories"]], "community_id": r["community_id"],
        "kind": r["kind"], "gender": r["gender"], "family_id": r["family_id"], "contact_id": r["contact_id"],
        "units": list(r["units"]), "registered_on": r["registered_on"], "moved_out_on": r["moved_out_on"],
        "status": "active" if r["moved_out_on"] is None else "moved_out",
    } for r in rows]}


@router.get("/rules", tags=["catalogue"], openapi_extra=OPEN)
async def rules(request: Request, category: Annotated[str | None, Query(pattern=CATEGORY_PATTERN)] = None,
                month: Annotated[str | None, Query(pattern=MONTH_PATTERN, description="YYYY-MM")] = None,
                ) -> dict[str, Any]:
    """The rule catalogue in force for a month (default: the current one), optionally for one category."""
    if month is None:
        ctx_now = request.app.state.clock()
        month = ctx_now.astimezone(_tz(request)).strftime("%Y-%m")
    async with request.app.state.runtime.pool.acquire() as conn:
        catalogue, _ = await request.app.state.catalogue.current(conn)
    version = catalogue.in_force(month)
    return {"month": month, "version": version.version if version else None,
            "effective_month": version.effective_month if version else None,
            "rules": [r.to_json() for r in catalogue.rules_for(month, category)],
            "categories": dict(CATEGORIES)}


def _tz(request: Request) -> dt.tzinfo:
    import zoneinfo

    return zoneinfo.ZoneInfo(request.app.state.runtime.settings.timezone)


@router.get("/vocabulary", tags=["catalogue"], openapi_extra=OPEN)
async def vocabulary() -> dict[str, Any]:
    """The zh-CN words for categories, dimensions, statuses, channels and roles (shared.vocabulary)."""
    return as_json()
