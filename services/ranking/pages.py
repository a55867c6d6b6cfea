"""The public board (公开排行榜): zh-CN, legible on a community hall's large screen, live from the feed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.ranking import chart, views
from services.ranking.domain import periods
from shared.errors import Rejected
from shared.http import ID_PATTERN, OPEN
from shared.vocabulary import CATEGORIES, CONSEQUENCES, PERIOD_KINDS

router = APIRouter(tags=["pages"])
templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(["html"]))
_PAGE = {200: {"description": "公开排行榜（HTML）", "content": {"text/html": {"schema": {"type": "string"}}}}}
Community = Annotated[str, Query(min_length=1, max_length=64, pattern=ID_PATTERN, description="社区编号")]


async def board_context(conn: asyncpg.Connection, community: str) -> dict[str, Any]:
    name = await views.scope_name(conn, community)
    latest = await conn.fetchval("select max(month) from rk_months where community_id = $1 and complete", community)
    ctx: dict[str, Any] = {"community": community, "community_name": name, "month": latest, "cards": [],
                           "year_cards": [], "consequences": [], "role_models": [], "chart": "",
                           "categories": CATEGORIES}
    if latest is None:
        return ctx
    month, _, year = periods.containing(latest)
    ctx["year"] = year.code
    for category in CATEGORIES:
        for key, period in (("cards", month), ("year_cards", year)):
            try:
                r = await views.ranking(conn, community, category, period)
            except Rejected:
                continue
            ranked = [e for e in r["entries"] if e["rank"] is not None]
            ctx[key].append({"category": category, "name": r["category_name"],
                             "top": [e for e in ranked if e["rank"] <= 5],
                             "not_ranked": [e for e in r["entries"] if e["rank"] is None]})
    ctx["consequences"] = await views.consequences(conn, community)
    ctx["role_models"] = await views.role_models(conn, community)
    ctx["chart"] = chart.bars(await views.dimensions(conn, community, year))
    ctx["consequence_words"] = CONSEQUENCES
    ctx["period_kinds"] = PERIOD_KINDS
    return ctx


@router.get("/board", response_class=HTMLResponse, responses=_PAGE, openapi_extra=OPEN)  # type: ignore[arg-type]
async def board(request: Request, community: Community) -> HTMLResponse:
    """公开排行榜页面（大屏）：各类别当月和年度排名、排名结果、先进典型、各维度积分图，随事件实时更新。"""
    async with request.app.state.runtime.pool.acquire() as conn:
        ctx = await board_context(conn, community)
    return HTMLResponse(templates.get_template("board.html").render(**ctx, now=dt.datetime.now()))


@router.get("/board/fragment", response_class=HTMLResponse, responses=_PAGE, openapi_extra=OPEN)  # type: ignore[arg-type]
async def fragment(request: Request, community: Community) -> HTMLResponse:
    """排行榜主体部分（页面收到新事件时重新取用）。"""
    async with request.app.state.runtime.pool.acquire() as conn:
        ctx = await board_context(conn, community)
    return HTMLResponse(templates.get_template("board_body.html").render(**ctx))
