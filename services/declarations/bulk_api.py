"""HTTP commands for bulk intake: activity attendance, the needs board, enterprise work reports;
and the county admin's token command."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field

from services.declarations import tables
from services.declarations.api import Evidence, Id
from services.declarations.context import Ctx, Me, context, idempotent
from services.declarations.domain import bulk
from services.declarations.domain.intake import Facts
from shared.auth import Principal, Role, issue_token, require_community, require_role
from shared.events.declarations import PointsItem
from shared.http import IdempotencyKey, RequestBody

router = APIRouter(tags=["bulk intake"])


class AttendanceBody(RequestBody):
    community_id: Id
    title: str = Field(min_length=1, max_length=200)
    rule_code: Id
    quantity: int = Field(1, ge=1, le=1000)
    occurred_on: dt.date
    subject_ids: list[Id] = Field(min_length=1, max_length=2000)
    evidence: Evidence = Field(default_factory=list)


class WorkLine(RequestBody):
    subject_id: Id
    quantity: int = Field(ge=1, le=1000)
    description: str = Field("", max_length=500)


class WorkReportBody(RequestBody):
    community_id: Id
    enterprise: str = Field(min_length=1, max_length=200)
    rule_code: Id
    occurred_on: dt.date
    lines: list[WorkLine] = Field(min_length=1, max_length=2000)
    evidence: Evidence = Field(default_factory=list)


class NeedBody(RequestBody):
    community_id: Id
    title: str = Field(min_length=1, max_length=200)
    rule_code: Id
    quantity: int = Field(1, ge=1, le=1000)
    description: str = Field("", max_length=2000)


class TakeBody(RequestBody):
    subject_id: Id


class CompleteBody(RequestBody):
    occurred_on: dt.date
    evidence: Evidence = Field(default_factory=list)


async def many_facts(conn: asyncpg.Connection, ctx: Ctx, community_id: str, rule_code: str, day: dt.date,
                     subject_ids: Sequence[str]) -> dict[str, Facts]:
    month = day.strftime("%Y-%m")
    subjects = await tables.subjects(conn, subject_ids)
    used = await tables.usage(conn, [(s, rule_code, month) for s in subject_ids if s in subjects])
    known = await tables.community_known(conn, community_id)
    closed = await tables.certified(conn, community_id, month)
    return {s: Facts(ctx.today, known, closed, subjects.get(s), used.get((s, rule_code, month), 0))
            for s in subject_ids}


async def append_bulk(conn: asyncpg.Connection, ctx: Ctx, stream: str, community_id: str,
                      events: Sequence[Any]) -> list[str]:
    """The head event on the record's stream (keyed by community), each item on its own (keyed by subject)."""
    ids = await ctx.append(conn, stream, [e for e in events if not isinstance(e, PointsItem)], key=community_id)
    for item in (e for e in events if isinstance(e, PointsItem)):
        ids += await ctx.append(conn, f"item-{item.item_id}", [item], key=item.subject_id, new=True)
    return ids


def items_answer(events: Sequence[Any], event_ids: list[str], **extra: Any) -> tuple[int, dict[str, Any]]:
    items = [{"item_id": e.item_id, "subject_id": e.subject_id, "points": e.points}
             for e in events if isinstance(e, PointsItem)]
    return 201, {**extra, "items": items, "points": sum(i["points"] for i in items), "event_ids": event_ids}


@router.post("/activities", status_code=201)
async def record_attendance(body: AttendanceBody, request: Request, principal: Me,
                            idempotency_key: IdempotencyKey) -> Response:
    ctx = context(request, principal)
    activity_id = str(uuid.uuid4())

    async def work(conn: asyncpg.Connection) -> tuple[int, dict[str, Any]]:
        facts = await many_facts(conn, ctx, body.community_id, body.rule_code, body.occurred_on, body.subject_ids)
        events = bulk.decide_attendance(
            activity_id=activity_id, community_id=body.community_id, title=body.title, rule_code=body.rule_code,
            quantity=body.quantity, occurred_on=body.occurred_on, subject_ids=body.subject_ids,
            evidence=tuple(body.evidence), actor=ctx.actor, facts=facts, catalogue=ctx.catalogue,
            item_ids={s: str(uuid.uuid4()) for s in body.subject_ids})
        ids = await append_bulk(conn, ctx, f"activity-{activity_id}", body.community_id, events)
        return items_answer(events, ids, activity_id=activity_id)

    return await idempotent(ctx, "attendance", idempotency_key, body.model_dump(mode="json"), work)


@router.post("/work-reports", status_code=201)
async def report_work(body: WorkReportBody, request: Request, principal: Me,
                      idempotency_key: IdempotencyKey) -> Response:
    ctx = context(request, principal)
    report_id = str(uuid.uuid4())
    ids_ = [line.subject_id for line in body.lines]

    async def work(conn: asyncpg.Connection) -> tuple[int, dict[str, Any]]:
        facts = await many_facts(conn, ctx, body.community_id, body.rule_code, body.occurred_on, ids_)
        events = bulk.decide_work_report(
            report_id=report_id, community_id=body.community_id, enterprise=body.enterprise,
            rule_code=body.rule_code, occurred_on=body.occurred_on,
            lines=[bulk.Line(x.subject_id, x.quantity, x.description or body.enterprise) for x in body.lines],
            evidence=tuple(body.evidence), actor=ctx.actor, facts=facts, catalogue=ctx.catalogue,
            item_ids={s: str(uuid.uuid4()) for s in ids_})
        ids = await append_bulk(conn, ctx, f"work-report-{report_id}", body.community_id, events)
        return items_answer(events, ids, report_id=report_id)

    return await idempotent(ctx, "work_report", idempotency_key, body.model_dump(mode="json"), work)


@router.post("/needs", status_code=201)
async def post_need(body: NeedBody, request: Request, principal: Me,
                    idempotency_key: IdempotencyKey) -> Response:
    ctx = context(request, principal)
    need_id = str(uuid.uuid4())

    async def work(conn: asyncpg.Connection) -> tuple[int, dict[str, Any]]:
        events = bulk.decide_post_need(
            need_id=need_id, community_id=body.community_id, title=body.title, rule_code=body.rule_code,
            quantity=body.quantity, description=body.description, actor=ctx.actor,
            community_known=await tables.community_known(conn, body.community_id),
            month=ctx.today.strftime("%Y-%m"), catalogue=ctx.catalogue)
        ids = await ctx.append(conn, f"need-{need_id}", events, key=body.community_id, new=True)
        return 201, {"need_id": need_id, "event_ids": ids}

    return await idempotent(ctx, "post_need", idempotency_key, body.model_dump(mode="json"), work)


@router.post("/needs/{need_id}/take", status_code=201)
async def take_need(need_id: str, body: TakeBody, request: Request, principal: Me,
                    idempotency_key: IdempotencyKey) -> Response:
    ctx = context(request, principal)

    async def work(conn: asyncpg.Connection) -> tuple[int, dict[str, Any]]:
        need = await tables.need(conn, need_id)
        facts = Facts(ctx.today, True, False, await tables.subject(conn, body.subject_id), 0)
        events = bulk.decide_take_need(need, need_id, body.subject_id, facts, ctx.actor)
        ids = await ctx.append(conn, f"need-{need_id}", events, key=events[0].community_id)  # type: ignore[attr-defined]
        return 201, {"need_id": need_id, "event_ids": ids}

    return await idempotent(ctx, f"take_need:{need_id}", idempotency_key, body.model_dump(mode="json"), work)


@router.post("/needs/{need_id}/complete", status_code=201)
async def complete_need(need_id: str, body: CompleteBody, request: Request, principal: Me,
                        idempotency_key: IdempotencyKey) -> Response:
    ctx = context(request, principal)
    item_id = str(uuid.uuid4())

    async def work(conn: asyncpg.Connection) -> tuple[int, dict[str, Any]]:
        need = await tables.need(conn, need_id)
        doer = need.taken_by if need and need.taken_by else ""
        facts = (await many_facts(conn, ctx, need.community_id, need.rule_code, body.occurred_on, [doer]))[doer] \
            if need else Facts(ctx.today, False, False, None, 0)
        events = bulk.decide_complete_need(need, need_id, body.occurred_on, tuple(body.evidence), facts, ctx.actor,
                                           ctx.catalogue, item_id)
        assert need is not None
        ids = await append_bulk(conn, ctx, f"need-{need_id}", need.community_id, events)
        return items_answer(events, ids, need_id=need_id, item_id=item_id)

    return await idempotent(ctx, f"complete_need:{need_id}", idempotency_key, body.model_dump(mode="json"), work)


@router.get("/needs")
async def list_needs(request: Request, principal: Me, community_id: str,
                     status: str | None = None) -> dict[str, Any]:
    require_community(principal, community_id)
    rows = await request.app.state.runtime.pool.fetch(
        "select * from needs where community_id = $1 and ($2::text is null or status = $2) order by title, need_id",
        community_id, status)
    return {"items": [dict(r) for r in rows]}


class TokenBody(RequestBody):
    sub: Id
    role: Role
    community: Id
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
