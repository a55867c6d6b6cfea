"""HTTP commands and queries of the ranking service (thin: parse, authorise, build the command, run it)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import APIRouter, Path, Query, Request
from pydantic import Field

from services.ranking import handlers, views
from services.ranking.domain.decide import RecordTalk, SelectRoleModel
from shared.auth import CurrentPrincipal, Role, require_community, require_role
from shared.commands import fingerprint, run_idempotent
from shared.errors import Rejected
from shared.http import ID_PATTERN, MONTH_PATTERN, OPEN, IdempotencyKey, RequestBody
from shared.service import Runtime
from shared.store import Recorded
from shared.vocabulary import TEN_MOST_BEAUTIFUL

router = APIRouter(tags=["ranking"])
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]
PathId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
PeriodQuery = Annotated[str, Query(min_length=1, max_length=16, description="2026-11、2026-Q4 或 2026")]
MonthPath = Annotated[str, Path(pattern=MONTH_PATTERN, description="YYYY-MM")]
Award = Literal["party_organization", "party_member", "resident", "family", "employed", "community_cadre",
                "building_head", "woman", "volunteer", "property_staff"]
assert set(Award.__args__) == set(TEN_MOST_BEAUTIFUL)  # type: ignore[attr-defined]
STAFF = (Role.recorder, Role.supervisor, Role.leading_group, Role.secretary, Role.auditor, Role.county_admin)
LEADING = (Role.leading_group, Role.secretary)


class TalkRequest(RequestBody):
    community_id: Id
    month: str = Field(pattern=MONTH_PATTERN)
    subject_id: Id
    talk: Literal["encouragement", "reminder"]
    note: str = Field("", max_length=2000)


class SelectionRequest(RequestBody):
    community_id: Id
    month: str = Field(pattern=MONTH_PATTERN)
    award: Award
    subject_id: Id
    note: str = Field("", max_length=2000)


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def today(request: Request) -> dt.date:
    return dt.datetime.now(ZoneInfo(runtime(request).settings.timezone)).date()


@router.get("/rankings", openapi_extra=OPEN)
async def rankings(request: Request, category: Annotated[str, Query(min_length=1, max_length=40)],
                   period: PeriodQuery,
                   scope: Annotated[str, Query(min_length=1, max_length=64, pattern=ID_PATTERN,
                                               description="社区编号，或 county（全县）")] = "county",
                   limit: Annotated[int, Query(ge=1, le=100_000, description="最多列出的条目数（按名次）")] = 100
                   ) -> dict[str, Any]:
    """排名（公开）：某社区或全县、某类别、某月/季度/年度；并列按 1、2、2、4 排名，期间中途加入者不参与排名。"""
    p = views.period_of(period, today(request))  # answers are kept in memory: see leaderboard.py
    async with runtime(request).pool.acquire() as conn:
        return await views.ranking(conn, scope, category, p, limit)


@router.get("/subjects/{subject_id}/ranks", openapi_extra=OPEN)
async def rank_history(subject_id: PathId, request: Request) -> dict[str, Any]:
    """某积分主体历次排名（公开）。"""
    async with runtime(request).pool.acquire() as conn:
        return await views.history(conn, subject_id)


@router.get("/subjects/{subject_id}/why")
async def why(subject_id: PathId, period: PeriodQuery, request: Request, principal: CurrentPrincipal
              ) -> dict[str, Any]:
    """得分依据：期间内已认定的条目与更正，含申报人、录入人和使它们生效的认定（谁、何时签署）。"""
    p = views.period_of(period, today(request))
    async with runtime(request).pool.acquire() as conn:
        s = await views.subject(conn, subject_id)
        if principal.role == Role.declarant:
            if subject_id not in principal.subject_ids:
                raise Rejected("申报人只能查看本人（本家庭）的得分依据", status=403, code="forbidden_subject")
        else:
            require_role(principal, *STAFF)
            require_community(principal, s["community_id"])
        return await views.why(conn, subject_id, p)


@router.get("/consequences/{community_id}", openapi_extra=OPEN)
async def consequences(community_id: PathId, request: Request) -> dict[str, Any]:
    """排名带来的结果（公开）：可评优秀、提拔优先、取消评优评先资格。"""
    async with runtime(request).pool.acquire() as conn:
        name = await views.scope_name(conn, community_id)
        return {"community_id": community_id, "community_name": name,
                "consequences": await views.consequences(conn, community_id)}


@router.get("/talks/{community_id}/{month}")
async def talks(community_id: PathId, month: MonthPath, request: Request, principal: CurrentPrincipal
                ) -> dict[str, Any]:
    """当月励志谈心室名单：各类别前 3 名激励谈话、后 3 名提醒谈话，及是否已谈。"""
    require_role(principal, *STAFF)
    require_community(principal, community_id)
    views.period_of(month, today(request))
    async with runtime(request).pool.acquire() as conn:
        await views.scope_name(conn, community_id)
        return {"community_id": community_id, "month": month, "talks": await views.talks(conn, community_id, month)}


@router.get("/nominations/{community_id}/{month}", openapi_extra=OPEN)
async def nominations(community_id: PathId, month: MonthPath, request: Request) -> dict[str, Any]:
    """当月“十个最美”提名（公开，取自排名）。"""
    views.period_of(month, today(request))
    async with runtime(request).pool.acquire() as conn:
        await views.scope_name(conn, community_id)
        return {"community_id": community_id, "month": month,
                "nominations": await views.nominations(conn, community_id, month)}


@router.get("/role-models/{community_id}", openapi_extra=OPEN)
async def role_models(community_id: PathId, request: Request) -> dict[str, Any]:
    """先进典型名册（公开）：领导小组选定的“十个最美”。"""
    async with runtime(request).pool.acquire() as conn:
        await views.scope_name(conn, community_id)
        return {"community_id": community_id, "role_models": await views.role_models(conn, community_id)}


async def _run(request: Request, principal: Any, key: str, payload: dict[str, Any], work: Any) -> dict[str, Any]:
    rt = runtime(request)
    recorded = Recorded(actor=principal.sub, time=dt.datetime.now(dt.UTC), correlation_id=uuid.uuid4())

    async def unit(conn: asyncpg.Connection) -> tuple[int, dict[str, Any]]:
        envelopes = await work(conn, rt, recorded)
        return 201, {"event_ids": [str(e.id) for e in envelopes]}

    print_ = fingerprint({"path": request.url.path, "actor": principal.sub, "body": payload})
    _, response, _ = await run_idempotent(rt.pool, f"ranking:{key}", print_, unit)
    return response


@router.post("/talks", status_code=201)
async def record_talk(body: TalkRequest, request: Request, principal: CurrentPrincipal,
                      idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """记录一次谈话已进行（谁谈的、备注）；不在名单上或重复记录的，拒绝。"""
    require_role(principal, Role.supervisor, Role.recorder, *LEADING)
    require_community(principal, body.community_id)
    views.period_of(body.month, today(request))
    cmd = RecordTalk(body.community_id, body.month, body.subject_id, body.talk, principal.name or principal.sub,
                     body.note)
    return await _run(request, principal, idempotency_key, body.model_dump(),
                      lambda conn, rt, rec: handlers.talk(conn, rt.store, cmd, rec))


@router.post("/role-models", status_code=201)
async def select_role_model(body: SelectionRequest, request: Request, principal: CurrentPrincipal,
                            idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """领导小组选定“十个最美”之一（须是当月提名人选）。"""
    require_role(principal, *LEADING)
    require_community(principal, body.community_id)
    views.period_of(body.month, today(request))
    cmd = SelectRoleModel(body.community_id, body.month, body.award, body.subject_id,
                          principal.name or principal.sub, body.note)
    return await _run(request, principal, idempotency_key, body.model_dump(),
                      lambda conn, rt, rec: handlers.select(conn, rt.store, cmd, rec))
