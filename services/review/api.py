"""HTTP commands and queries of the review service (thin: validate, authorise, run a handler)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field

from services.review import handlers, views
from services.review.clock import now as clock_now
from services.review.domain.model import Signer
from services.review.settings import review_settings
from shared.auth import CurrentPrincipal, Principal, Role, read_token, require_community, require_role
from shared.commands import Rejected, fingerprint, run_idempotent
from shared.envelope import Envelope
from shared.events.review import CHANNELS, Channel, Decision
from shared.http import IdempotencyKey, RequestBody
from shared.service import Runtime
from shared.store import Recorded

router = APIRouter(tags=["review"])

MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"
Now = Annotated[dt.datetime, Depends(clock_now)]
LEADING = (Role.secretary, Role.leading_group)
STAFF = (Role.recorder, Role.supervisor, *LEADING, Role.auditor, Role.county_admin)


class DecideRequest(RequestBody):
    decision: Decision
    note: str = Field("", max_length=1000)


class CertifyRequest(RequestBody):
    community_id: str = Field(min_length=1, max_length=64)
    month: str = Field(pattern=MONTH)
    co_signer_tokens: list[str] = Field(default_factory=list, max_length=10)


class NoticeRequest(RequestBody):
    community_id: str = Field(min_length=1, max_length=64)
    month: str = Field(pattern=MONTH)
    channels: list[Channel] = Field(default_factory=lambda: list(CHANNELS), max_length=3)


class ObjectionRequest(RequestBody):
    community_id: str = Field(min_length=1, max_length=64)
    month: str = Field(pattern=MONTH)
    item_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=2000)


class ResolveRequest(RequestBody):
    reason: str = Field(min_length=1, max_length=2000)
    delta: int = Field(0, ge=-100_000, le=100_000)


class CorrectionRequest(RequestBody):
    community_id: str = Field(min_length=1, max_length=64)
    item_id: str = Field(min_length=1, max_length=64)
    delta: int = Field(ge=-100_000, le=100_000)
    reason: str = Field(min_length=1, max_length=2000)


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


async def run(request: Request, principal: Principal, key: str, payload: dict[str, Any], now: dt.datetime,
              work: Callable[[asyncpg.Connection, Recorded], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    rt = runtime(request)
    recorded = Recorded(actor=principal.sub, time=now, correlation_id=uuid.uuid4())

    async def unit(conn: asyncpg.Connection) -> tuple[int, dict[str, Any]]:
        return 201, await work(conn, recorded)

    print_ = fingerprint({"path": request.url.path, "actor": principal.sub, "body": payload})
    _, response, _ = await run_idempotent(rt.pool, f"review:{key}", print_, unit)
    return response


def _out(envs: list[Envelope], **extra: Any) -> dict[str, Any]:
    return handlers.summary(envs) | extra


@router.post("/items/{item_id}/verification", status_code=201)
async def verify(item_id: str, body: DecideRequest, request: Request, principal: CurrentPrincipal, now: Now,
                 idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """记录员审核：通过、退回修改（写明要改什么）或驳回（写明理由）。"""
    require_role(principal, Role.recorder, Role.supervisor)
    rt = runtime(request)

    async def work(conn: asyncpg.Connection, rec: Recorded) -> dict[str, Any]:
        return _out(await handlers.decide_item(conn, rt.store, item_id=item_id, actor_community=principal.community,
                                               decision=body.decision, note=body.note, overrule=False, recorded=rec))
    return await run(request, principal, idempotency_key, body.model_dump(), now, work)


@router.post("/items/{item_id}/overrule", status_code=201)
async def overrule(item_id: str, body: DecideRequest, request: Request, principal: CurrentPrincipal, now: Now,
                   idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """监督员改判记录员的审核结果（须写明理由）。"""
    require_role(principal, Role.supervisor)
    rt = runtime(request)

    async def work(conn: asyncpg.Connection, rec: Recorded) -> dict[str, Any]:
        return _out(await handlers.decide_item(conn, rt.store, item_id=item_id, actor_community=principal.community,
                                               decision=body.decision, note=body.note, overrule=True, recorded=rec))
    return await run(request, principal, idempotency_key, body.model_dump(), now, work)


def _signer(p: Principal) -> Signer:
    return Signer(sub=p.sub, role=p.role.value, community=p.community, name=p.name)


def _co_signer(token: str) -> Signer:
    try:
        return _signer(read_token(token))
    except Rejected as exc:
        raise Rejected(f"共同签署人的确认码无效：{exc.reason}", status=422, code="co_signer_invalid") from exc


@router.post("/certifications", status_code=201)
async def certify(body: CertifyRequest, request: Request, principal: CurrentPrincipal, now: Now,
                  idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """领导小组认定一个社区一个月的积分：第一责任人加至少一名其他成员共同签署。"""
    require_role(principal, *LEADING)
    require_community(principal, body.community_id)
    signers = [_signer(principal), *(_co_signer(t) for t in body.co_signer_tokens)]
    rt = runtime(request)

    async def work(conn: asyncpg.Connection, rec: Recorded) -> dict[str, Any]:
        return _out(await handlers.certify(conn, rt.store, community_id=body.community_id, month=body.month,
                                           signers=signers, now=now, settings=review_settings(),
                                           tz=rt.settings.timezone, recorded=rec))
    return await run(request, principal, idempotency_key, body.model_dump(), now, work)


@router.post("/notices", status_code=201)
async def post_notice(body: NoticeRequest, request: Request, principal: CurrentPrincipal, now: Now,
                      idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """记录认定名单已在哪些渠道公示（公众号、党员微信群、公告栏）；首次公示开始异议期。"""
    require_role(principal, *LEADING)
    require_community(principal, body.community_id)
    rt = runtime(request)

    async def work(conn: asyncpg.Connection, rec: Recorded) -> dict[str, Any]:
        return _out(await handlers.post_notice(conn, rt.store, community_id=body.community_id, month=body.month,
                                               channels=body.channels, now=now, settings=review_settings(),
                                               recorded=rec))
    return await run(request, principal, idempotency_key, body.model_dump(), now, work)


@router.post("/objections", status_code=201)
async def raise_objection(body: ObjectionRequest, request: Request, principal: CurrentPrincipal, now: Now,
                          idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """本社区居民在异议期内对公示条目提出异议（每人每条一次）。"""
    require_role(principal, Role.declarant)
    rt = runtime(request)

    async def work(conn: asyncpg.Connection, rec: Recorded) -> dict[str, Any]:
        objection_id, envs = await handlers.object_to(
            conn, rt.store, community_id=body.community_id, month=body.month, item_id=body.item_id,
            resident=principal.sub, resident_community=principal.community, reason=body.reason, now=now,
            recorded=rec)
        return _out(envs, objection_id=objection_id)
    return await run(request, principal, idempotency_key, body.model_dump(), now, work)


async def _resolve(objection_id: str, body: ResolveRequest, request: Request, principal: Principal,
                   now: dt.datetime, key: str, uphold: bool) -> dict[str, Any]:
    require_role(principal, *LEADING)
    rt = runtime(request)

    async def work(conn: asyncpg.Connection, rec: Recorded) -> dict[str, Any]:
        return _out(await handlers.resolve(conn, rt.store, objection_id=objection_id,
                                           actor_community=principal.community, uphold=uphold, delta=body.delta,
                                           reason=body.reason, now=now, tz=rt.settings.timezone, recorded=rec))
    return await run(request, principal, key, body.model_dump() | {"uphold": uphold}, now, work)


@router.post("/objections/{objection_id}/uphold", status_code=201)
async def uphold(objection_id: str, body: ResolveRequest, request: Request, principal: CurrentPrincipal, now: Now,
                 idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """采纳异议：产生一条更正（delta 分），原认定条目不改。"""
    return await _resolve(objection_id, body, request, principal, now, idempotency_key, uphold=True)


@router.post("/objections/{objection_id}/dismiss", status_code=201)
async def dismiss(objection_id: str, body: ResolveRequest, request: Request, principal: CurrentPrincipal, now: Now,
                  idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """不予采纳（须写明理由）。"""
    return await _resolve(objection_id, body, request, principal, now, idempotency_key, uphold=False)


@router.post("/corrections", status_code=201)
async def correct(body: CorrectionRequest, request: Request, principal: CurrentPrincipal, now: Now,
                  idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """监督员对迟到或有误的条目作更正：引用原条目，计入更正当时未认定的月份。"""
    require_role(principal, Role.supervisor)
    require_community(principal, body.community_id)
    rt = runtime(request)

    async def work(conn: asyncpg.Connection, rec: Recorded) -> dict[str, Any]:
        return _out(await handlers.correct(conn, rt.store, community_id=body.community_id, item_id=body.item_id,
                                           delta=body.delta, reason=body.reason, now=now, tz=rt.settings.timezone,
                                           recorded=rec))
    return await run(request, principal, idempotency_key, body.model_dump(), now, work)


@router.post("/months/{community_id}/{month}/finalise", status_code=201)
async def finalise(community_id: str, month: str, request: Request, principal: CurrentPrincipal, now: Now,
                   idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """异议期结束后确认该月结果为最终结果。"""
    require_role(principal, *LEADING)
    require_community(principal, community_id)
    rt = runtime(request)

    async def work(conn: asyncpg.Connection, rec: Recorded) -> dict[str, Any]:
        return _out(await handlers.finalise(conn, rt.store, community_id=community_id, month=month, now=now,
                                            recorded=rec))
    return await run(request, principal, idempotency_key, {"month": month}, now, work)


# ---- queries (the projections) ------------------------------------------------------------------
@router.get("/months/{community_id}/{month}")
async def month_view(community_id: str, month: str, request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    require_role(principal, *STAFF)
    require_community(principal, community_id)
    pool = runtime(request).pool
    return {"month": await views.month(pool, community_id, month),
            "glance": await views.glance(pool, community_id, month),
            "waiting": await views.items(pool, community_id, month, "submitted", limit=200)}


@router.get("/items")
async def item_list(community_id: str, month: str, request: Request, principal: CurrentPrincipal,
                    status: str | None = None, limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> dict[str, Any]:
    require_role(principal, *STAFF)
    require_community(principal, community_id)
    return {"items": await views.items(runtime(request).pool, community_id, month, status, min(limit, 5000))}


@router.get("/objections")
async def objection_list(community_id: str, request: Request, principal: CurrentPrincipal,
                         status: str | None = None) -> dict[str, Any]:
    require_role(principal, *STAFF)
    require_community(principal, community_id)
    return {"objections": await views.objections(runtime(request).pool, community_id, status)}


@router.get("/corrections")
async def correction_list(community_id: str, request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    require_role(principal, *STAFF)
    require_community(principal, community_id)
    return {"corrections": await views.corrections(runtime(request).pool, community_id)}
