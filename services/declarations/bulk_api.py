"""HTTP commands for bulk intake: activity attendance, the needs board, enterprise work reports;
and the county admin's token command."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import Field

from services.declarations.api import Evidence, Id, PathId, QueryId
from services.declarations.context import Me, context
from services.declarations.domain.commands import (
    CompleteNeed,
    PostNeed,
    RecordAttendance,
    ReportWork,
    TakeNeed,
)
from services.declarations.domain.commands import (
    WorkLine as Work,
)
from shared.auth import Principal, Role, issue_token, require_community, require_role
from shared.events import Event
from shared.events.declarations import PointsItem
from shared.http import IdempotencyKey, RequestBody, SchemeDate, Title

router = APIRouter(tags=["bulk intake"])


class AttendanceBody(RequestBody):
    community_id: Id
    title: Title
    rule_code: Id
    quantity: int = Field(1, ge=1, le=1000)
    occurred_on: SchemeDate
    subject_ids: list[Id] = Field(min_length=1, max_length=2000)
    evidence: Evidence = Field(default_factory=list)


class WorkLine(RequestBody):
    subject_id: Id
    quantity: int = Field(ge=1, le=1000)
    description: str = Field("", max_length=500)


class WorkReportBody(RequestBody):
    community_id: Id
    enterprise: Title
    rule_code: Id
    occurred_on: SchemeDate
    lines: list[WorkLine] = Field(min_length=1, max_length=2000)
    evidence: Evidence = Field(default_factory=list)


class NeedBody(RequestBody):
    community_id: Id
    title: Title
    rule_code: Id
    quantity: int = Field(1, ge=1, le=1000)
    description: str = Field("", max_length=2000)


class TakeBody(RequestBody):
    subject_id: Id


class CompleteBody(RequestBody):
    occurred_on: SchemeDate
    evidence: Evidence = Field(default_factory=list)


def items_answer(**extra: Any) -> Callable[[list[Event], list[str]], tuple[int, dict[str, Any]]]:
    def respond(events: list[Event], event_ids: list[str]) -> tuple[int, dict[str, Any]]:
        items = [{"item_id": e.item_id, "subject_id": e.subject_id, "points": e.points}
                 for e in events if isinstance(e, PointsItem)]
        return 201, {**extra, "items": items, "points": sum(i["points"] for i in items), "event_ids": event_ids}

    return respond


def need_answer(need_id: str) -> Callable[[list[Event], list[str]], tuple[int, dict[str, Any]]]:
    return lambda _, event_ids: (201, {"need_id": need_id, "event_ids": event_ids})


@router.post("/activities", status_code=201)
async def record_attendance(body: AttendanceBody, request: Request, principal: Me,
                            idempotency_key: IdempotencyKey) -> Response:
    ctx = context(request, principal)
    activity_id = str(uuid.uuid4())
    command = RecordAttendance(
        ctx.actor, ctx.today, activity_id=activity_id, community_id=body.community_id, title=body.title,
        rule_code=body.rule_code, quantity=body.quantity, occurred_on=body.occurred_on,
        subject_ids=tuple(body.subject_ids), evidence=tuple(body.evidence),
        item_ids=tuple(str(uuid.uuid4()) for _ in body.subject_ids))
    return await ctx.run(command, "attendance", idempotency_key, body.model_dump(mode="json"),
                         items_answer(activity_id=activity_id))


@router.post("/work-reports", status_code=201)
async def report_work(body: WorkReportBody, request: Request, principal: Me,
                      idempotency_key: IdempotencyKey) -> Response:
    ctx = context(request, principal)
    report_id = str(uuid.uuid4())
    command = ReportWork(
        ctx.actor, ctx.today, report_id=report_id, community_id=body.community_id, enterprise=body.enterprise,
        rule_code=body.rule_code, occurred_on=body.occurred_on,
        lines=tuple(Work(x.subject_id, x.quantity, x.description or body.enterprise) for x in body.lines),
        evidence=tuple(body.evidence), item_ids=tuple(str(uuid.uuid4()) for _ in body.lines))
    return await ctx.run(command, "work_report", idempotency_key, body.model_dump(mode="json"),
                         items_answer(report_id=report_id))


@router.post("/needs", status_code=201)
async def post_need(body: NeedBody, request: Request, principal: Me,
                    idempotency_key: IdempotencyKey) -> Response:
    ctx = context(request, principal)
    need_id = str(uuid.uuid4())
    command = PostNeed(ctx.actor, ctx.today, need_id=need_id, community_id=body.community_id, title=body.title,
                       rule_code=body.rule_code, quantity=body.quantity, description=body.description)
    return await ctx.run(command, "post_need", idempotency_key, body.model_dump(mode="json"), need_answer(need_id))


@router.post("/needs/{need_id}/take", status_code=201)
async def take_need(need_id: PathId, body: TakeBody, request: Request, principal: Me,
                    idempotency_key: IdempotencyKey) -> Response:
    ctx = context(request, principal)
    command = TakeNeed(ctx.actor, ctx.today, need_id=need_id, subject_id=body.subject_id)
    return await ctx.run(command, f"take_need:{need_id}", idempotency_key, body.model_dump(mode="json"),
                         need_answer(need_id))


@router.post("/needs/{need_id}/complete", status_code=201)
async def complete_need(need_id: PathId, body: CompleteBody, request: Request, principal: Me,
                        idempotency_key: IdempotencyKey) -> Response:
    ctx = context(request, principal)
    item_id = str(uuid.uuid4())
    command = CompleteNeed(ctx.actor, ctx.today, need_id=need_id, occurred_on=body.occurred_on,
                           evidence=tuple(body.evidence), item_id=item_id)
    return await ctx.run(command, f"complete_need:{need_id}", idempotency_key, body.model_dump(mode="json"),
                         items_answer(need_id=need_id, item_id=item_id))


@router.get("/needs")
async def list_needs(request: Request, principal: Me, community_id: QueryId,
                     status: Annotated[str | None, Query(pattern="^(open|taken|completed)$")] = None) -> dict[str, Any]:
    require_community(principal, community_id)
    rows = await request.app.state.runtime.pool.fetch(
        "select * from needs where community_id = $1 and ($2::text is null or status = $2) order by title, need_id",
        community_id, status)
    return {"items": [dict(r) for r in rows]}


class TokenBody(RequestBody):
    sub: Id
    role: Role
    community: str = Field(min_length=1, max_length=64, pattern=r"^(\*|[A-Za-z0-9][A-Za-z0-9._:-]*)$")  # "*": county
    subject_ids: list[Id] = Field(default_factory=list, max_length=50)
    name: str = Field("", max_length=100)
    days: int = Field(30, ge=1, le=366)


@router.post("/tokens", status_code=201, tags=["auth"])
async def issue(body: TokenBody, principal: Me) -> dict[str, Any]:
    """County admin issues a signed token (also: ``python -m shared.auth issue``)."""
    require_role(principal, Role.county_admin)
    token = issue_token(Principal(sub=body.sub, role=body.role, community=body.community,
                                  subject_ids=tuple(body.subject_ids), name=body.name), days=body.days)
    return {"token": token}
