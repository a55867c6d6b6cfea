"""HTTP commands and queries of the exchange service (thin: parse, authorise, build the command, queue it)."""

from __future__ import annotations

import base64
import datetime as dt
import math
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
import orjson
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import Field, model_validator

from services.exchange import handlers, views
from services.exchange.counter import Counter, Job
from services.exchange.domain import commands as c
from services.exchange.domain.member_code import normalise
from services.exchange.handlers import Decided
from services.exchange.held import Held
from shared.auth import Principal, Role, current_principal, require_community, require_role
from shared.commands import fingerprint
from shared.errors import Rejected
from shared.events.exchange import DateWindow, Limits
from shared.http import ID_PATTERN, MONTH_PATTERN, IdempotencyKey, Name, RequestBody, SchemeDate
from shared.service import Runtime
from shared.settings import get_settings
from shared.store import Recorded

router = APIRouter(tags=["exchange"])


_VERIFIED: dict[tuple[str, str], tuple[Principal, float]] = {}  # (secret, authorization) -> principal, expiry


async def signed_in(request: Request) -> Principal:
    """``shared.auth.current_principal``, on the event loop (FastAPI runs a plain function dependency
    in a worker thread, a hop that costs more than the check) and remembering the bearer tokens it
    has verified until they expire: verifying is a quarter of a counter request's CPU, and a counter
    sends the same token all day. The secret is part of the key, so a new secret verifies anew."""
    header = request.headers.get("authorization", "")
    key = (get_settings().token_secret, header)
    known = _VERIFIED.get(key)
    if known is not None and time.time() < known[1]:
        return known[0]
    principal = current_principal(request)
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        if len(_VERIFIED) >= 10_000:
            _VERIFIED.clear()
        _VERIFIED[key] = (principal, _expiry(token))
    return principal


def _expiry(token: str) -> float:
    """The ``exp`` claim of a token already verified (jwt: valid while now < exp; none: no expiry)."""
    payload = token.split(".")[1]
    exp = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("exp")
    return float(exp) if exp is not None else math.inf


CurrentPrincipal = Annotated[Principal, Depends(signed_in)]
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]
PathId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
MonthPath = Annotated[str, Path(pattern=MONTH_PATTERN, description="YYYY-MM")]
CodePath = Annotated[str, Path(min_length=1, max_length=40, description="会员码，例如 HZ-1A2B3-C4D5E")]
Category = Literal["party_organization", "party_member", "mass_organization", "resident", "family", "employed",
                   "community_cadre", "volunteer", "building_head", "property_staff"]
KEEPERS = (Role.clerk, Role.county_admin)  # list items, change them, receive donations
READERS = (Role.clerk, Role.auditor, Role.county_admin, Role.secretary, Role.leading_group, Role.supervisor)


class Window(RequestBody):
    first_day: SchemeDate
    last_day: SchemeDate

    @model_validator(mode="after")
    def ordered(self) -> Window:
        if self.last_day < self.first_day:
            raise Rejected("兑换期的结束日期不能早于开始日期", code="window_reversed")
        return self


class LimitsBody(RequestBody):
    categories: list[Category] = Field(default_factory=list, max_length=10, description="可兑换的积分主体类别；空=不限")
    windows: list[Window] = Field(default_factory=list, max_length=12, description="兑换期；空=常年")
    per_subject: int | None = Field(None, ge=1, le=1000, description="每人每期限兑件数；空=不限")
    period: Literal["month", "quarter", "year"] = "month"

    def limits(self) -> Limits:
        return Limits(categories=tuple(self.categories), per_subject=self.per_subject, period=self.period,
                      windows=tuple(DateWindow(first_day=w.first_day, last_day=w.last_day) for w in self.windows))


class Effective(RequestBody):
    effective_from: dt.datetime | None = Field(None, description="生效时间（带时区）；空=立即")

    @model_validator(mode="after")
    def zoned(self) -> Effective:
        if self.effective_from is not None and self.effective_from.tzinfo is None:
            raise Rejected("生效时间须带时区，例如 2026-12-08T08:00:00+08:00", code="timezone_required")
        if self.effective_from is not None and not 2016 <= self.effective_from.year <= 2050:
            raise Rejected("生效时间应在 2016 至 2050 年之间", code="effective_out_of_scheme")
        return self


class ListItemRequest(Effective):
    item_id: Id
    community_id: Id
    name: Name
    unit: str = Field("件", min_length=1, max_length=10)
    price: int = Field(ge=1, le=100_000, description="每件所需积分")
    limits: LimitsBody = Field(default_factory=LimitsBody)


class PriceRequest(Effective):
    price: int = Field(ge=1, le=100_000)


class LimitsRequest(Effective):
    limits: LimitsBody


class DonationRequest(RequestBody):
    item_id: Id
    donor: Name
    quantity: int = Field(ge=1, le=100_000)
    received_on: SchemeDate


class LineBody(RequestBody):
    item_id: Id
    quantity: int = Field(ge=1, le=1000, description="件数，至少 1")
    price: int | None = Field(None, ge=1, le=100_000, description="柜台页面显示的单价；与当时价格不符则拒绝")


class RedeemRequest(RequestBody):
    member_code: str = Field(min_length=1, max_length=40)
    lines: list[LineBody] = Field(min_length=1, max_length=30)
    counter: Id = "counter-1"


class ReturnRequest(RequestBody):
    reason: Name


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def now_and_day(request: Request) -> tuple[dt.datetime, dt.date]:
    now = dt.datetime.now(dt.UTC)
    return now, now.astimezone(ZoneInfo(runtime(request).settings.timezone)).date()


async def run(request: Request, principal: Principal, key: str, body: RequestBody, now: dt.datetime,
              work: Callable[[asyncpg.Connection, Held], Awaitable[Decided]], *, member_code: str = "",
              item_ids: tuple[str, ...] = ()) -> Response:
    """Queue the command for the counter's next transaction; the answer (first one, on repeat) as sent."""
    counter: Counter = request.app.state.counter
    print_ = fingerprint({"path": request.url.path, "body": body.model_dump(mode="json")})
    job = Job(f"exchange:{key}", print_, work, Recorded(actor=principal.sub, time=now, correlation_id=uuid.uuid4()),
              member_code, item_ids)
    status, answer = await counter.submit(job)
    return Response(orjson.dumps(answer), status_code=status, media_type="application/json")


def member_code_of(typed: str) -> str:
    code = normalise(typed)
    if code is None:
        raise Rejected(f"查无此会员码（{typed}），请核对会员卡", status=404, code="member_not_found")
    return code


@router.post("/redemptions", status_code=201)
async def redeem(body: RedeemRequest, request: Request, principal: CurrentPrincipal,
                 idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """爱心超市柜台兑换：扫码或输入会员码，选商品，确认。积分与库存在同一事务内核对，整单兑换或整单拒绝。"""
    require_role(principal, Role.clerk)
    now, day = now_and_day(request)
    command = c.Redeem(str(uuid.uuid4()), member_code_of(body.member_code),
                       tuple(c.Line(li.item_id, li.quantity, li.price) for li in body.lines), body.counter,
                       principal.sub, principal.community, now, day, principal.name)
    return await run(request, principal, idempotency_key, body, now,  # type: ignore[return-value]
                     lambda conn, held: handlers.redeem(conn, command, held), member_code=command.member_code,
                     item_ids=tuple(line.item_id for line in command.lines))


@router.post("/redemptions/{redemption_id}/return", status_code=201)
async def return_redemption(redemption_id: PathId, body: ReturnRequest, request: Request,
                            principal: CurrentPrincipal, idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """整单退货：退回库存和积分（按当时所付积分），并恢复限兑额度。"""
    require_role(principal, Role.clerk)
    now, day = now_and_day(request)
    command = c.ReturnRedemption(redemption_id, body.reason, principal.sub, principal.community, now, day)
    return await run(request, principal, idempotency_key, body, now,  # type: ignore[return-value]
                     lambda conn, held: handlers.return_redemption(conn, command, held))


@router.post("/catalogue/items", status_code=201)
async def list_item(body: ListItemRequest, request: Request, principal: CurrentPrincipal,
                    idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """上架商品：兑换积分、单位和可选限制（类别、兑换期、每人每期限兑）。"""
    require_role(principal, *KEEPERS)
    require_community(principal, body.community_id)
    now, _ = now_and_day(request)
    command = c.ListItem(body.item_id, body.community_id, body.name, body.unit, body.price, body.limits.limits(),
                         body.effective_from or now, principal.sub)
    return await run(request, principal, idempotency_key, body, now,  # type: ignore[return-value]
                     lambda conn, held: handlers.list_item(conn, command, held))


@router.post("/catalogue/items/{item_id}/price", status_code=201)
async def change_price(item_id: PathId, body: PriceRequest, request: Request, principal: CurrentPrincipal,
                       idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """调整兑换积分，自所述时间起生效（不影响此前的兑换）。"""
    require_role(principal, *KEEPERS)
    now, _ = now_and_day(request)
    command = c.ChangePrice(item_id, str(uuid.uuid4()), body.price, body.effective_from or now, now)
    return await run(request, principal, idempotency_key, body, now,  # type: ignore[return-value]
                     lambda conn, held: handlers.change_item(conn, command, principal.community, held))


@router.post("/catalogue/items/{item_id}/limits", status_code=201)
async def change_limits(item_id: PathId, body: LimitsRequest, request: Request, principal: CurrentPrincipal,
                        idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """调整兑换限制，自所述时间起生效。"""
    require_role(principal, *KEEPERS)
    now, _ = now_and_day(request)
    command = c.ChangeLimits(item_id, str(uuid.uuid4()), body.limits.limits(), body.effective_from or now, now)
    return await run(request, principal, idempotency_key, body, now,  # type: ignore[return-value]
                     lambda conn, held: handlers.change_item(conn, command, principal.community, held))


@router.post("/donations", status_code=201)
async def receive_donation(body: DonationRequest, request: Request, principal: CurrentPrincipal,
                           idempotency_key: IdempotencyKey) -> dict[str, Any]:
    """登记捐赠入库：捐赠方、商品、数量、日期。"""
    require_role(principal, *KEEPERS)
    now, today = now_and_day(request)
    if body.received_on > today:
        raise Rejected(f"捐赠入库日期（{body.received_on}）不能晚于今天", code="date_in_future")
    command = c.ReceiveDonation(body.item_id, str(uuid.uuid4()), body.donor, body.quantity, body.received_on)
    return await run(request, principal, idempotency_key, body, now,  # type: ignore[return-value]
                     lambda conn, held: handlers.change_item(conn, command, principal.community, held))


@router.get("/members/{member_code}")
async def member(member_code: CodePath, request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """会员码查询：姓名、可用积分、待认定积分（不可使用）。"""
    require_role(principal, *READERS)
    async with runtime(request).pool.acquire() as conn:
        found = await views.member(conn, member_code_of(member_code))
    if found is None:
        raise Rejected(f"查无此会员码（{member_code}），请核对会员卡", status=404, code="member_not_found")
    require_community(principal, found["community_id"])
    return found


@router.get("/catalogue/{community_id}")
async def catalogue(community_id: PathId, request: Request, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    """本社区爱心超市的商品：现行兑换积分、库存、限制。"""
    require_role(principal, *READERS)
    require_community(principal, community_id)
    async with runtime(request).pool.acquire() as conn:
        return await views.catalogue(conn, community_id, now_and_day(request)[0])


@router.get("/redemptions/{redemption_id}")
async def redemption(redemption_id: PathId, request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """一笔兑换（小票内容）。"""
    require_role(principal, *READERS)
    async with runtime(request).pool.acquire() as conn:
        found = await views.receipt(conn, redemption_id)
    if found is None:
        raise Rejected("找不到这笔兑换记录", status=404, code="redemption_not_found")
    require_community(principal, found["community_id"])
    return found


@router.get("/statistics/{community_id}/{month}")
async def statistics(community_id: PathId, month: MonthPath, request: Request,
                     principal: CurrentPrincipal) -> dict[str, Any]:
    """月度兑换统计：兑换件数、兑换人数、消耗积分、热门商品（退货计入退货当月）。"""
    require_role(principal, *READERS)
    require_community(principal, community_id)
    async with runtime(request).pool.acquire() as conn:
        return await views.statistics(conn, community_id, month)


@router.get("/donors/{community_id}/{month}")
async def donors(community_id: PathId, month: MonthPath, request: Request,
                 principal: CurrentPrincipal) -> dict[str, Any]:
    """月度捐赠报表：捐赠方、商品、数量。"""
    require_role(principal, *READERS)
    require_community(principal, community_id)
    async with runtime(request).pool.acquire() as conn:
        return await views.donors(conn, community_id, month)


if os.environ.get("BENCH_NOOP") == "1":
    # Only for bench/exchange.py: the same server's ceiling for a signed-in JSON POST that does nothing.
    @router.post("/bench/noop", status_code=201, include_in_schema=False)
    async def noop(body: RedeemRequest, principal: CurrentPrincipal, idempotency_key: IdempotencyKey) -> dict[str, Any]:
        require_role(principal, Role.clerk)
        return {"ok": True}
