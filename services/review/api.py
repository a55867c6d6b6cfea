"""HTTP commands and queries of the review service (thin: parse, authorise, build the command, run it)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field, model_validator

from services.review import clock, handlers, views
from services.review.domain import commands as c
from services.review.domain.certification import still_needed, valid_signers
from services.review.domain.model import Signer
from services.review.domain.page import PAGE_LIMIT, page_problem, size_problem
from services.review.settings import review_settings
from shared.auth import CurrentPrincipal, Principal, Role, require_community, require_role
from shared.commands import Rejected, fingerprint, run_idempotent
from shared.events.review import CHANNELS, Channel, ClockSet, Decision
from shared.http import ID_PATTERN, MONTH_PATTERN, SCHEME_FIRST_DAY, SCHEME_LAST_DAY, IdempotencyKey, RequestBody
from shared.service import Runtime
from shared.store import Recorded

router = APIRouter(tags=["review"])

MONTH = MONTH_PATTERN
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]
PathId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
QueryId = Annotated[str, Query(min_length=1, max_length=64, pattern=ID_PATTERN)]
Now = Annotated[dt.datetime, Depends(clock.now)]
MonthPath = Annotated[str, Path(pattern=MONTH, description="YYYY-MM")]
MonthQuery = Annotated[str, Query(pattern=MONTH, description="YYYY-MM")]
StatusQuery = Annotated[str | None, Query(pattern=r"^(submitted|verified|returned|rejected|open|upheld|dismissed)$")]
LEADING = (Role.secretary, Role.leading_group)
READERS = (Role.recorder, Role.supervisor, *LEADING, Role.auditor, Role.county_admin)
# a bearer token (JWT: three base64url parts, the first a JSON header): nobody's credential in a body
_TOKEN = re.compile(r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]{5,}")


class Body(RequestBody):
    @model_validator(mode="before")
    @classmethod
    def no_credentials(cls, data: Any) -> Any:
        if _TOKEN.search(repr(data)):
            raise Rejected("请求体中不得携带登录凭证：每位成员须用自己的账号登录后亲自签署", status=422,
                           code="credential_in_body")
        return data


class DecideRequest(Body):
    decision: Decision
    note: str = Field("", max_length=1000)


class Look(DecideRequest):
    item_id: Id


class PageRequest(Body):
    decisions: list[Look] = Field(min_length=1, max_length=PAGE_LIMIT,
                                  description=f"一页审核结论，1 至 {PAGE_LIMIT} 条，每个条目至多一条")

    @model_validator(mode="before")
    @classmethod
    def page_size(cls, data: Any) -> Any:  # before the field's own length check: a reason that says the limit
        looks = data.get("decisions") if isinstance(data, dict) else None
        if isinstance(looks, list) and (problem := size_problem(len(looks))):
            raise problem
        return data

    @model_validator(mode="after")
    def each_item_once(self) -> PageRequest:
        if problem := page_problem([look.item_id for look in self.decisions]):
            raise problem
        return self


class LookOutcome(BaseModel):
    item_id: str
    decision: Decision
    outcome: Literal["accepted", "refused"]
    event_ids: list[str] = Field(default_factory=list, description="accepted: the events appended for this item")
    error: str | None = Field(None, description="refused: the code the single command would answer, e.g. own_item")
    reason: str | None = Field(None, description="refused: why (zh-CN)")
    status: int | None = Field(None, description="refused: the HTTP status the single command would answer")


class PageAnswer(BaseModel):
    accepted: int
    refused: int
    event_count: int
    outcomes: list[LookOutcome] = Field(description="one per decision, in the order sent")


class SignRequest(Body):
    community_id: Id
    month: str = Field(pattern=MONTH)
    digest: str = Field(pattern=r"^[0-9a-f]{64}$",
                        description="sha256 of the list the signer saw (GET /certifications/…)")


class NoticeRequest(Body):
    community_id: Id
    month: str = Field(pattern=MONTH)
    channels: list[Channel] = Field(default_factory=lambda: list(CHANNELS), max_length=3)


class ObjectionRequest(Body):
    community_id: Id
    month: str = Field(pattern=MONTH)
    item_id: Id
    reason: str = Field(min_length=1, max_length=2000)


class ResolveRequest(Body):
    reason: str = Field(min_length=1, max_length=2000)
    delta: int = Field(0, ge=-100_000, le=100_000)


class CorrectionRequest(Body):
    community_id: Id
    item_id: Id
    delta: int = Field(ge=-100_000, le=100_000)
    reason: str = Field(min_length=1, max_length=2000)


class ClockRequest(Body):
    now: dt.datetime | None = Field(None, description="The time the service takes as now; null: the real clock.")
    frozen: bool = Field(False, description="Stay at ``now`` instead of running on from it.")
    reason: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def within_scheme(self) -> ClockRequest:
        if self.now is not None and self.now.tzinfo is None:
            raise Rejected("时间须带时区，例如 2026-12-08T10:00:00+08:00", status=422, code="timezone_required")
        if self.now is not None and not SCHEME_FIRST_DAY <= self.now.date() <= SCHEME_LAST_DAY:
            raise Rejected(f"时间应在 {SCHEME_FIRST_DAY} 至 {SCHEME_LAST_DAY} 之间", status=422,
                           code="clock_out_of_scheme")
        return self


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def _actor(p: Principal) -> c.Actor:
    return c.Actor(p.sub, p.community)


async def run(request: Request, principal: Principal, key: str, payload: dict[str, Any], now: dt.datetime,
              command: c.Command, answer: Callable[[handlers.Outcome], dict[str, Any]] | None = None
              ) -> dict[str, Any]:
    """The one path: idempotency claim, then handlers.handle (decide, append, evolve) in one transaction."""
    rt = runtime(request)
    recorded = Recorded(actor=principal.sub, time=now, correlation_id=uuid.uuid4())
    settings = review_settings()

    async def unit(conn: asyncpg.Connection) -> tuple[int, dict[str, Any]]:
        outcome = await handlers.handle(conn, rt.store, command, lambda cid: settings.rules(cid, rt.settings.timezone),
                                        recorded, attempts=settings.command_attempts)
        return 201, handlers.summary(outcome.envelopes) | (answer(outcome) if answer else {})

    print_ = fingerprint({"path": request.url.path, "actor": principal.sub, "body": payload})
    _, response, _ = await run_idempotent(rt.pool, f"review:{key}", print_, unit)
    return response


@router.post("/items/{item_id}/verification", status_code=201)
async def verify(item_id: PathId, body: DecideRequest, request: Request, principal: CurrentPrincipal, now: Now,
                 idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """记录员审核：通过、退回修改（写明要改什么）或驳回（写明理由）。不能审核自己申报或录入的条目。"""
    require_role(principal, Role.recorder, Role.supervisor)
    return await run(request, principal, idempotency_key, body.model_dump(), now,
                     c.DecideItem(item_id, body.decision, body.note, _actor(principal)))


@router.post("/items/verifications", status_code=200, response_model=PageAnswer)
async def verify_page(body: PageRequest, request: Request, principal: CurrentPrincipal, now: Now,
                      idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """记录员一次审核一页条目（至多 500 条）：每条的规则与逐条审核相同（不能审核自己申报或录入的条目、
    不能审核其他社区的条目、已有结论的不能再审）。不合规的条目逐条说明原因，其余照常生效。"""
    require_role(principal, Role.recorder, Role.supervisor)
    actor = _actor(principal)
    command = c.DecideItems(tuple(c.DecideItem(look.item_id, look.decision, look.note, actor)
                                  for look in body.decisions))
    rt, settings = runtime(request), review_settings()
    recorded = Recorded(actor=principal.sub, time=now, correlation_id=uuid.uuid4())

    async def unit(conn: asyncpg.Connection) -> tuple[int, dict[str, Any]]:
        outcome = await handlers.handle_page(conn, rt.store, command,
                                             lambda cid: settings.rules(cid, rt.settings.timezone), recorded,
                                             attempts=settings.command_attempts)
        looks = [{"item_id": o.look.item_id, "decision": o.look.decision, "outcome": "accepted",
                  "event_ids": [str(e.id) for e in outcome.envelopes[o.look.item_id]]} if o.refused is None else
                 {"item_id": o.look.item_id, "decision": o.look.decision, "outcome": "refused",
                  "error": o.refused.code, "reason": o.refused.reason, "status": o.refused.status}
                 for o in outcome.looks]
        accepted = sum(1 for o in outcome.looks if o.refused is None)
        return 200, {"accepted": accepted, "refused": len(looks) - accepted,
                     "event_count": sum(len(e) for e in outcome.envelopes.values()), "outcomes": looks}

    print_ = fingerprint({"path": request.url.path, "actor": principal.sub, "body": body.model_dump()})
    _, response, _ = await run_idempotent(rt.pool, f"review:{idempotency_key}", print_, unit)
    return response


@router.post("/items/{item_id}/overrule", status_code=201)
async def overrule(item_id: PathId, body: DecideRequest, request: Request, principal: CurrentPrincipal, now: Now,
                   idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """监督员改判记录员的审核结果（须写明理由）。"""
    require_role(principal, Role.supervisor)
    return await run(request, principal, idempotency_key, body.model_dump(), now,
                     c.OverruleItem(item_id, body.decision, body.note, _actor(principal)))


def _signer(p: Principal) -> Signer:
    return Signer(sub=p.sub, role=p.role.value, community=p.community, name=p.name)


@router.post("/certifications", status_code=201)
async def sign(body: SignRequest, request: Request, principal: CurrentPrincipal, now: Now,
               idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """领导小组成员用本人账号签署当月认定名单（摘要）；第一责任人和至少一名其他成员签署同一摘要时，该月即认定。"""
    require_role(principal, *LEADING)
    require_community(principal, body.community_id)
    quorum = review_settings().quorum

    def answer(outcome: handlers.Outcome) -> dict[str, Any]:
        m = outcome.state.month(body.month)
        signers = valid_signers(outcome.state, body.month, body.digest)
        return {"certified": m.certified_at is not None, "signed_by": sorted(s.sub for s in signers),
                "still_needed": "" if m.certified_at else still_needed(signers, outcome.state.items_of(body.month),
                                                                         quorum)}
    return await run(request, principal, idempotency_key, body.model_dump(), now,
                     c.SignMonth(body.community_id, body.month, body.digest, _signer(principal), now), answer)


@router.get("/certifications/{community_id}/{month}")
async def to_sign(community_id: PathId, month: MonthPath, request: Request,
                  principal: CurrentPrincipal) -> dict[str, Any]:
    """当月待签署的认定名单摘要与已有签名（取自同一快照）。"""
    require_role(principal, *READERS)
    require_community(principal, community_id)
    async with views.snapshot(runtime(request).pool) as conn:
        return await views.signing(conn, community_id, month)


@router.post("/notices", status_code=201)
async def post_notice(body: NoticeRequest, request: Request, principal: CurrentPrincipal, now: Now,
                      idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """记录认定名单已在哪些渠道公示（公众号、党员微信群、公告栏）；首次公示开始异议期。"""
    require_role(principal, *LEADING)
    require_community(principal, body.community_id)
    return await run(request, principal, idempotency_key, body.model_dump(), now,
                     c.PostNotice(body.community_id, body.month, tuple(body.channels), now))


@router.post("/objections", status_code=201)
async def raise_objection(body: ObjectionRequest, request: Request, principal: CurrentPrincipal, now: Now,
                          idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """本社区居民在异议期内对公示条目提出异议（每人每条一次）。"""
    require_role(principal, Role.declarant)
    objection_id = str(uuid.uuid4())
    command = c.RaiseObjection(body.community_id, body.month, body.item_id, principal.sub, principal.community,
                               principal.name, body.reason, objection_id, now)
    return await run(request, principal, idempotency_key, body.model_dump(), now, command,
                     lambda _: {"objection_id": objection_id})


async def _resolve(objection_id: PathId, body: ResolveRequest, request: Request, principal: Principal,
                   now: dt.datetime, key: str, uphold: bool) -> dict[str, Any]:
    require_role(principal, *LEADING)
    command = c.ResolveObjection(objection_id, uphold, body.delta, body.reason, str(uuid.uuid4()),
                                 _actor(principal), now)
    return await run(request, principal, key, body.model_dump() | {"uphold": uphold}, now, command)


@router.post("/objections/{objection_id}/uphold", status_code=201)
async def uphold(objection_id: PathId, body: ResolveRequest, request: Request, principal: CurrentPrincipal, now: Now,
                 idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """采纳异议：产生一条更正（delta 分），原认定条目不改。"""
    return await _resolve(objection_id, body, request, principal, now, idempotency_key, uphold=True)


@router.post("/objections/{objection_id}/dismiss", status_code=201)
async def dismiss(objection_id: PathId, body: ResolveRequest, request: Request, principal: CurrentPrincipal, now: Now,
                  idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """不予采纳（须写明理由）。"""
    return await _resolve(objection_id, body, request, principal, now, idempotency_key, uphold=False)


@router.post("/corrections", status_code=201)
async def correct(body: CorrectionRequest, request: Request, principal: CurrentPrincipal, now: Now,
                  idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """监督员对迟到或有误的条目作更正：引用原条目，计入更正当时未认定的月份。"""
    require_role(principal, Role.supervisor)
    require_community(principal, body.community_id)
    return await run(request, principal, idempotency_key, body.model_dump(), now,
                     c.CorrectItem(body.community_id, body.item_id, body.delta, body.reason, str(uuid.uuid4()), now))


@router.post("/months/{community_id}/{month}/finalise", status_code=201)
async def finalise(community_id: PathId, month: MonthPath, request: Request, principal: CurrentPrincipal, now: Now,
                   idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """异议期结束后确认该月结果为最终结果。"""
    require_role(principal, *LEADING)
    require_community(principal, community_id)
    return await run(request, principal, idempotency_key, {"month": month}, now,
                     c.FinaliseMonth(community_id, month, now))


@router.post("/admin/clock", status_code=201)
async def set_clock(body: ClockRequest, request: Request, principal: CurrentPrincipal, now: Now,
                    idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """县管理员调整审核服务的时钟（仅限测试和演示环境；生产环境拒绝）；每次调整都记入日志。"""
    require_role(principal, Role.county_admin)
    if not review_settings().clock_adjustable:
        raise Rejected("生产环境不允许调整时钟", status=403, code="clock_not_adjustable")
    rt = runtime(request)
    real = clock.system_now()
    offset = 0.0 if body.now is None or body.frozen else (body.now - real).total_seconds()
    recorded = Recorded(actor=principal.sub, time=real, correlation_id=uuid.uuid4())

    async def unit(conn: asyncpg.Connection) -> tuple[int, dict[str, Any]]:
        await conn.execute(
            """insert into review_clock (id, frozen_at, offset_seconds) values (true, $1, $2)
               on conflict (id) do update
               set frozen_at = excluded.frozen_at, offset_seconds = excluded.offset_seconds""",
            body.now if body.frozen else None, offset)
        version = await conn.fetchval("select coalesce(max(version), 0) from events where stream_id = 'review-clock'")
        envs = await rt.store.append(conn, "review-clock", version,
                                     [ClockSet(now=body.now, offset_seconds=offset, reason=body.reason)],
                                     key="review-clock", recorded=recorded)
        return 201, handlers.summary(envs) | {"now": (await clock.read(conn)).isoformat(), "was": now.isoformat()}

    print_ = fingerprint({"path": request.url.path, "actor": principal.sub, "body": body.model_dump(mode="json")})
    _, response, _ = await run_idempotent(rt.pool, f"review:{idempotency_key}", print_, unit)
    return response


@router.get("/admin/clock")
async def read_clock(principal: CurrentPrincipal, now: Now) -> dict[str, Any]:
    require_role(principal, *READERS)
    return {"now": now.isoformat(), "adjustable": review_settings().clock_adjustable}


# ---- queries (the projections, each answer from one snapshot) ----------------------------------
@router.get("/months/{community_id}/{month}")
async def month_view(community_id: PathId, month: MonthPath, request: Request,
                     principal: CurrentPrincipal) -> dict[str, Any]:
    require_role(principal, *READERS)
    require_community(principal, community_id)
    async with views.snapshot(runtime(request).pool) as conn:
        return {"month": await views.month(conn, community_id, month),
                "glance": await views.glance(conn, community_id, month),
                "waiting": await views.items(conn, community_id, month, "submitted", limit=200),
                "signing": await views.signing(conn, community_id, month)}


@router.get("/items")
async def item_list(community_id: QueryId, month: MonthQuery, request: Request, principal: CurrentPrincipal,
                    status: StatusQuery = None, limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> dict[str, Any]:
    require_role(principal, *READERS)
    require_community(principal, community_id)
    async with views.snapshot(runtime(request).pool) as conn:
        return {"items": await views.items(conn, community_id, month, status, min(limit, 5000))}


@router.get("/objections")
async def objection_list(community_id: QueryId, request: Request, principal: CurrentPrincipal,
                         status: StatusQuery = None) -> dict[str, Any]:
    require_role(principal, *READERS)
    require_community(principal, community_id)
    async with views.snapshot(runtime(request).pool) as conn:
        return {"objections": await views.objections(conn, community_id, status)}


@router.get("/corrections")
async def correction_list(community_id: QueryId, request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    require_role(principal, *READERS)
    require_community(principal, community_id)
    async with views.snapshot(runtime(request).pool) as conn:
        return {"corrections": await views.corrections(conn, community_id)}

