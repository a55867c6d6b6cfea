"""HTTP commands of the roster: communities, org units, subjects, category changes, moving out, import."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import Field

from services.declarations import roster_import, tables
from services.declarations.api import Id
from services.declarations.context import Ctx, Me, context, idempotent
from services.declarations.domain import roster
from services.declarations.domain.roster import SubjectSpec
from shared.auth import Principal, Role, require_community, require_role
from shared.commands import Rejected
from shared.events import Event
from shared.http import IdempotencyKey, RequestBody

router = APIRouter(tags=["roster"])
ROSTER_KEEPERS = (Role.recorder, Role.supervisor, Role.county_admin)


class CommunityBody(RequestBody):
    community_id: Id
    name: str = Field(min_length=1, max_length=100)
    county: str = Field("赫章县", max_length=100)


class UnitBody(RequestBody):
    community_id: Id
    unit_id: Id
    kind: str = Field(max_length=32)
    name: str = Field(min_length=1, max_length=100)
    parent_id: str | None = Field(None, max_length=64)


class SubjectBody(RequestBody):
    subject_id: Id
    kind: str = Field(max_length=32)
    name: str = Field(min_length=1, max_length=100)
    categories: list[str] = Field(max_length=10)
    gender: str | None = Field(None, max_length=10)
    family_id: str | None = Field(None, max_length=64)
    contact_id: str | None = Field(None, max_length=64)
    units: list[str] = Field(default_factory=list, max_length=20)
    registered_on: dt.date | None = None

    def spec(self, today: dt.date) -> SubjectSpec:
        return SubjectSpec(self.subject_id, self.kind, self.name, tuple(self.categories),
                           self.registered_on or today, self.gender, self.family_id, self.contact_id,
                           tuple(self.units))


class RegisterBody(RequestBody):
    community_id: Id
    subjects: list[SubjectBody] = Field(min_length=1, max_length=2000)


class CategoriesBody(RequestBody):
    categories: list[str] = Field(max_length=10)
    changed_on: dt.date | None = None


class MoveOutBody(RequestBody):
    moved_out_on: dt.date | None = None
    reason: str = Field("", max_length=500)


def keeper(principal: Principal, community_id: str) -> None:
    require_role(principal, *ROSTER_KEEPERS)
    require_community(principal, community_id)


@router.post("/communities", status_code=201)
async def register_community(body: CommunityBody, request: Request, principal: Me,
                             idempotency_key: IdempotencyKey) -> Response:
    require_role(principal, Role.county_admin)
    ctx = context(request, principal)

    async def work(conn: asyncpg.Connection) -> tuple[int, dict[str, Any]]:
        events = roster.register_community(body.community_id, body.name, body.county,
                                           await tables.community_known(conn, body.community_id))
        ids = await ctx.append(conn, f"community-{body.community_id}", events, key=body.community_id, new=True)
        return 201, {"community_id": body.community_id, "event_ids": ids}

    return await idempotent(ctx, "register_community", idempotency_key, body.model_dump(mode="json"), work)


@router.post("/org-units", status_code=201)
async def add_org_unit(body: UnitBody, request: Request, principal: Me,
                       idempotency_key: IdempotencyKey) -> Response:
    keeper(principal, body.community_id)
    ctx = context(request, principal)

    async def work(conn: asyncpg.Connection) -> tuple[int, dict[str, Any]]:
        units = await tables.units(conn, body.community_id)
        known = await tables.community_known(conn, body.community_id)
        if body.unit_id not in units and await conn.fetchval("select true from org_units where unit_id = $1",
                                                             body.unit_id):
            raise Rejected(f"组织或网格编号 {body.unit_id} 已被其他社区使用", status=409, code="unit_exists")
        events = roster.add_org_unit(known, units, body.community_id, body.unit_id, body.kind, body.name,
                                     body.parent_id)
        ids = await ctx.append(conn, f"community-{body.community_id}", events, key=body.community_id)
        return 201, {"unit_id": body.unit_id, "event_ids": ids}

    return await idempotent(ctx, "add_org_unit", idempotency_key, body.model_dump(mode="json"), work)


async def _register(conn: asyncpg.Connection, ctx: Ctx, community_id: str, specs: list[SubjectSpec]) -> list[str]:
    events = roster.register_subjects(
        community_id, await tables.community_known(conn, community_id), specs,
        await tables.taken_ids(conn, [s.subject_id for s in specs]), await tables.units(conn, community_id),
        await tables.ids_of_kind(conn, community_id, "family"), await tables.ids_of_kind(conn, community_id, "person"))
    envs = await ctx.rt.store.append_new_streams(
        conn, [(f"subject-{ev.subject_id}", [ev], ev.subject_id, ctx.recorded) for ev in events])
    await tables.evolve(conn, events)
    return [str(e.id) for batch in envs for e in batch]


@router.post("/subjects", status_code=201)
async def register_subjects(body: RegisterBody, request: Request, principal: Me,
                            idempotency_key: IdempotencyKey) -> Response:
    """Register one or more subjects: all or nothing, every bad item reported."""
    keeper(principal, body.community_id)
    ctx = context(request, principal)

    async def work(conn: asyncpg.Connection) -> tuple[int, dict[str, Any]]:
        ids = await _register(conn, ctx, body.community_id, [s.spec(ctx.today) for s in body.subjects])
        return 201, {"registered": len(body.subjects), "event_ids": ids}

    return await idempotent(ctx, "register_subjects", idempotency_key, body.model_dump(mode="json"), work)


@router.post("/subjects/{subject_id}/categories", status_code=201)
async def change_categories(subject_id: str, body: CategoriesBody, request: Request, principal: Me,
                            idempotency_key: IdempotencyKey) -> Response:
    return await _on_subject(request, principal, "categories", subject_id, body, idempotency_key,
                             lambda s, today: roster.change_categories(s, subject_id, tuple(body.categories),
                                                                       body.changed_on or today))


@router.post("/subjects/{subject_id}/move-out", status_code=201)
async def move_out(subject_id: str, body: MoveOutBody, request: Request, principal: Me,
                   idempotency_key: IdempotencyKey) -> Response:
    return await _on_subject(request, principal, "move_out", subject_id, body, idempotency_key,
                             lambda s, today: roster.move_out(s, subject_id, body.moved_out_on or today, body.reason))


async def _on_subject(request: Request, principal: Principal, command: str, subject_id: str, body: RequestBody,
                      idempotency_key: str,
                      decide: Callable[[roster.Subject | None, dt.date], Sequence[Event]]) -> Response:
    """A roster keeper's command on one subject of their community: load it, decide, append."""
    ctx = context(request, principal)
    require_role(principal, *ROSTER_KEEPERS)

    async def work(conn: asyncpg.Connection) -> tuple[int, dict[str, Any]]:
        s = await tables.subject(conn, subject_id)
        if s is not None:
            require_community(principal, s.community_id)
        events = decide(s, ctx.today)
        return 201, {"event_ids": await ctx.append(conn, f"subject-{subject_id}", events, key=subject_id)}

    return await idempotent(ctx, f"{command}:{subject_id}", idempotency_key, body.model_dump(mode="json"), work)


@router.post("/roster/import", status_code=201)
async def import_roster(request: Request, principal: Me, idempotency_key: IdempotencyKey,
                        community_id: Annotated[str, Form(min_length=1, max_length=64)],
                        file: Annotated[UploadFile, File()]) -> Response:
    """Bulk import from CSV or .xlsx. Any bad row: nothing imported, 422 with every bad row and why."""
    keeper(principal, community_id)
    ctx = context(request, principal)
    data = await file.read()
    try:
        parsed = roster_import.parse(data, file.filename or "", ctx.today)
    except roster_import.UnreadableFile as exc:
        raise Rejected(str(exc), code="roster_file_unreadable") from exc

    async def work(conn: asyncpg.Connection) -> tuple[int, dict[str, Any]]:
        specs = [p.spec for p in parsed if p.spec is not None]
        taken = await tables.taken_ids(conn, [s.subject_id for s in specs])
        units = await tables.units(conn, community_id)
        families = await tables.ids_of_kind(conn, community_id, "family") | {s.subject_id for s in specs
                                                                              if s.kind == "family"}
        persons = await tables.ids_of_kind(conn, community_id, "person") | {s.subject_id for s in specs
                                                                             if s.kind == "person"}
        ids = [s.subject_id for s in specs]
        report = []
        for p in parsed:
            problems = list(p.problems)
            if p.spec is not None:
                problems += roster.spec_problems(p.spec, community_id=community_id, taken=p.spec.subject_id in taken,
                                                 units=units, families=families, persons=persons)
                if ids.count(p.spec.subject_id) > 1:
                    problems.append(f"编号 {p.spec.subject_id} 在文件中重复")
            if problems:
                report.append({"row": p.row, "subject_id": p.spec.subject_id if p.spec else "", "problems": problems})
        if not parsed:
            raise Rejected("文件中没有数据行", code="empty_roster")
        if report:
            raise Rejected(f"{len(report)} 行有误，整个文件未导入", code="roster_rows_refused", rows=report)
        event_ids = await _register(conn, ctx, community_id, specs)
        return 201, {"imported": len(specs), "rows": [], "event_ids": event_ids}

    payload = {"community_id": community_id, "file_sha256": hashlib.sha256(data).hexdigest()}
    return await idempotent(ctx, "import_roster", idempotency_key, payload, work)


@router.get("/communities")
async def list_communities(request: Request, principal: Me) -> dict[str, Any]:
    rows = await request.app.state.runtime.pool.fetch("select * from communities order by community_id")
    return {"items": [dict(r) for r in rows if principal.may_act_in(r["community_id"])]}


@router.get("/org-units")
async def list_org_units(request: Request, principal: Me, community_id: str) -> dict[str, Any]:
    """The community's party organisation and grid cells, parents before children."""
    require_community(principal, community_id)
    rows = await request.app.state.runtime.pool.fetch(
        """with recursive tree as (
               select u.*, 0 as depth from org_units u where community_id = $1 and parent_id is null
               union all
               select u.*, t.depth + 1 from org_units u join tree t on u.parent_id = t.unit_id)
           select * from tree order by depth, unit_id""", community_id)
    return {"items": [dict(r) for r in rows]}
