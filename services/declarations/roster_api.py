"""HTTP commands of the roster: communities, org units, subjects, category changes, moving out, import."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import Field

from services.declarations import roster_import
from services.declarations.api import Id, PathId, QueryId
from services.declarations.context import Me, context
from services.declarations.domain.commands import (
    AddOrgUnit,
    ChangeCategories,
    MoveOut,
    RegisterCommunity,
    RegisterSubjects,
)
from services.declarations.domain.roster import SubjectSpec
from services.declarations.pipeline import Respond
from shared.auth import Principal, Role, require_community, require_role
from shared.errors import Rejected
from shared.http import ID_PATTERN, IdempotencyKey, Name, RequestBody, SchemeDate

router = APIRouter(tags=["roster"])
ROSTER_KEEPERS = (Role.recorder, Role.supervisor, Role.county_admin)


class CommunityBody(RequestBody):
    community_id: Id
    name: Name
    county: Name = "赫章县"


class UnitBody(RequestBody):
    community_id: Id
    unit_id: Id
    kind: str = Field(max_length=32)
    name: Name
    parent_id: Id | None = None


class SubjectBody(RequestBody):
    subject_id: Id
    kind: str = Field(max_length=32)
    name: Name
    categories: list[Annotated[str, Field(max_length=32)]] = Field(max_length=10)
    gender: str | None = Field(None, max_length=10)
    family_id: Id | None = None
    contact_id: Id | None = None
    units: list[Id] = Field(default_factory=list, max_length=20)
    registered_on: SchemeDate | None = None

    def spec(self, today: dt.date) -> SubjectSpec:
        return SubjectSpec(self.subject_id, self.kind, self.name, tuple(self.categories),
                           self.registered_on or today, self.gender, self.family_id, self.contact_id,
                           tuple(self.units))


class RegisterBody(RequestBody):
    community_id: Id
    subjects: list[SubjectBody] = Field(min_length=1, max_length=2000)


class CategoriesBody(RequestBody):
    categories: list[Annotated[str, Field(max_length=32)]] = Field(max_length=10)
    changed_on: SchemeDate | None = None


class MoveOutBody(RequestBody):
    moved_out_on: SchemeDate | None = None
    reason: str = Field("", max_length=500)


def keeper(principal: Principal, community_id: str) -> None:
    require_role(principal, *ROSTER_KEEPERS)
    require_community(principal, community_id)


def registered(what: str, value: str) -> Respond:
    return lambda _, event_ids: (201, {what: value, "event_ids": event_ids})


@router.post("/communities", status_code=201)
async def register_community(body: CommunityBody, request: Request, principal: Me,
                             idempotency_key: IdempotencyKey) -> Response:
    require_role(principal, Role.county_admin)
    ctx = context(request, principal)
    command = RegisterCommunity(ctx.actor, ctx.today, body.community_id, body.name, body.county)
    return await ctx.run(command, "register_community", idempotency_key, body.model_dump(mode="json"),
                         registered("community_id", body.community_id))


@router.post("/org-units", status_code=201)
async def add_org_unit(body: UnitBody, request: Request, principal: Me,
                       idempotency_key: IdempotencyKey) -> Response:
    keeper(principal, body.community_id)
    ctx = context(request, principal)
    command = AddOrgUnit(ctx.actor, ctx.today, body.community_id, body.unit_id, body.kind, body.name, body.parent_id)
    return await ctx.run(command, "add_org_unit", idempotency_key, body.model_dump(mode="json"),
                         registered("unit_id", body.unit_id))


@router.post("/subjects", status_code=201)
async def register_subjects(body: RegisterBody, request: Request, principal: Me,
                            idempotency_key: IdempotencyKey) -> Response:
    """Register one or more subjects: all or nothing, every bad item reported."""
    keeper(principal, body.community_id)
    ctx = context(request, principal)
    command = RegisterSubjects(ctx.actor, ctx.today, body.community_id,
                               tuple(s.spec(ctx.today) for s in body.subjects))
    n = len(body.subjects)
    return await ctx.run(command, "register_subjects", idempotency_key, body.model_dump(mode="json"),
                         lambda _, ids: (201, {"registered": n, "event_ids": ids}))


@router.post("/subjects/{subject_id}/categories", status_code=201)
async def change_categories(subject_id: PathId, body: CategoriesBody, request: Request, principal: Me,
                            idempotency_key: IdempotencyKey) -> Response:
    require_role(principal, *ROSTER_KEEPERS)
    ctx = context(request, principal)
    command = ChangeCategories(ctx.actor, ctx.today, subject_id, tuple(body.categories), body.changed_on or ctx.today)
    return await ctx.run(command, f"categories:{subject_id}", idempotency_key, body.model_dump(mode="json"),
                         lambda _, ids: (201, {"event_ids": ids}))


@router.post("/subjects/{subject_id}/move-out", status_code=201)
async def move_out(subject_id: PathId, body: MoveOutBody, request: Request, principal: Me,
                   idempotency_key: IdempotencyKey) -> Response:
    require_role(principal, *ROSTER_KEEPERS)
    ctx = context(request, principal)
    command = MoveOut(ctx.actor, ctx.today, subject_id, body.moved_out_on or ctx.today, body.reason)
    return await ctx.run(command, f"move_out:{subject_id}", idempotency_key, body.model_dump(mode="json"),
                         lambda _, ids: (201, {"event_ids": ids}))


@router.post("/roster/import", status_code=201)
async def import_roster(request: Request, principal: Me, idempotency_key: IdempotencyKey,
                        community_id: Annotated[str, Form(min_length=1, max_length=64, pattern=ID_PATTERN)],
                        file: Annotated[UploadFile, File()]) -> Response:
    """Bulk import from CSV or .xlsx. Any bad row: nothing imported, 422 with every bad row (file row numbers)."""
    keeper(principal, community_id)
    ctx = context(request, principal)
    data = await file.read()
    try:
        parsed = roster_import.parse(data, file.filename or "", ctx.today)
    except roster_import.UnreadableFile as exc:
        raise Rejected(str(exc), code="roster_file_unreadable") from exc
    if not parsed:
        raise Rejected("文件中没有数据行", code="empty_roster")
    command = RegisterSubjects(ctx.actor, ctx.today, community_id, tuple(p.spec for p in parsed),
                               tuple(p.row for p in parsed), tuple(tuple(p.problems) for p in parsed))
    payload = {"community_id": community_id, "file_sha256": hashlib.sha256(data).hexdigest()}
    n = len(parsed)
    return await ctx.run(command, "import_roster", idempotency_key, payload,
                         lambda _, ids: (201, {"imported": n, "rows": [], "event_ids": ids}))


@router.get("/communities")
async def list_communities(request: Request, principal: Me) -> dict[str, Any]:
    rows = await request.app.state.runtime.pool.fetch("select * from communities order by community_id")
    return {"items": [dict(r) for r in rows if principal.may_act_in(r["community_id"])]}


@router.get("/org-units")
async def list_org_units(request: Request, principal: Me, community_id: QueryId) -> dict[str, Any]:
    """The community's party organisation and grid cells, parents before children."""
    require_community(principal, community_id)
    rows = await request.app.state.runtime.pool.fetch(
        """with recursive tree as (
               select u.*, 0 as depth from org_units u where community_id = $1 and parent_id is null
               union all
               select u.*, t.depth + 1 from org_units u join tree t on u.parent_id = t.unit_id)
           select * from tree order by depth, unit_id""", community_id)
    return {"items": [dict(r) for r in rows]}
