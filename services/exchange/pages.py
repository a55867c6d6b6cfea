"""The counter's pages (zh-CN, large type): the counter, a member card with its QR code, the receipt.

The QR code is drawn on the server (segno, SVG): no script, no network, prints sharp.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import segno
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from services.exchange import views
from services.exchange.api import READERS, CodePath, PathId, member_code_of, runtime
from shared.auth import CurrentPrincipal, Role, read_token, require_community, require_role
from shared.errors import Rejected
from shared.vocabulary import REDEMPTION_STATUSES, words

router = APIRouter(tags=["pages"])
templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(["html"]))
_PAGE = {200: {"description": "页面（HTML）", "content": {"text/html": {"schema": {"type": "string"}}}}}


def _render(name: str, **context: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**context))


def qr_svg(text: str) -> Markup:
    """The member code as an inline SVG QR code (error correction M: survives a worn card)."""
    return Markup(segno.make(text, error="m", micro=False).svg_inline(scale=8, border=2, dark="#000"))


@router.get("/login", include_in_schema=False)
async def login(token: str, next: str = "/counter") -> RedirectResponse:
    read_token(token)
    response = RedirectResponse(next if next.startswith("/") else "/counter", status_code=303)
    response.set_cookie("points_token", token, httponly=True, samesite="strict")
    return response


@router.get("/counter", response_class=HTMLResponse, responses=_PAGE)  # type: ignore[arg-type]
async def counter(request: Request, principal: CurrentPrincipal) -> HTMLResponse:
    """柜台页面：扫码或输入会员码，查看积分，选商品，确认兑换，打印小票。"""
    require_role(principal, Role.clerk)
    async with runtime(request).pool.acquire() as conn:
        name = await views.community_name(conn, principal.community)
    return _render("counter.html", community_id=principal.community, community_name=name,
                   clerk=principal.name or principal.sub)


@router.get("/cards/{member_code}", response_class=HTMLResponse, responses=_PAGE)  # type: ignore[arg-type]
async def card(member_code: CodePath, request: Request, principal: CurrentPrincipal) -> HTMLResponse:
    """会员卡（可打印）：姓名、社区、会员码和二维码。"""
    require_role(principal, *READERS)
    code = member_code_of(member_code)
    async with runtime(request).pool.acquire() as conn:
        found = await views.member(conn, code)
    if found is None:
        raise Rejected(f"查无此会员码（{member_code}），请核对会员卡", status=404, code="member_not_found")
    require_community(principal, found["community_id"])
    return _render("card.html", member=found, qr=qr_svg(code))


@router.get("/receipts/{redemption_id}", response_class=HTMLResponse, responses=_PAGE)  # type: ignore[arg-type]
async def receipt(redemption_id: PathId, request: Request, principal: CurrentPrincipal) -> HTMLResponse:
    """兑换小票（可打印）。"""
    require_role(principal, *READERS)
    rt = runtime(request)
    async with rt.pool.acquire() as conn:
        found = await views.receipt(conn, redemption_id)
    if found is None:
        raise Rejected("找不到这笔兑换记录", status=404, code="redemption_not_found")
    require_community(principal, found["community_id"])
    tz = ZoneInfo(rt.settings.timezone)

    def local(value: dt.datetime | None) -> str:
        return "" if value is None else value.astimezone(tz).strftime("%Y-%m-%d %H:%M")

    return _render("receipt.html", r=found, local=local, status=words(REDEMPTION_STATUSES, found["status"]))
