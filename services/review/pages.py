"""The leading group's page and the printable public notice (zh-CN, server-rendered from the projections)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.review import clock, labels, views
from services.review.api import MONTH, PathId
from services.review.domain.model import local_date, month_of
from services.review.settings import review_settings
from shared.auth import CurrentPrincipal, Role, read_token, require_community, require_role
from shared.errors import Rejected
from shared.http import ID_PATTERN, OPEN
from shared.service import Runtime

router = APIRouter(tags=["pages"])
templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(["html"]))
templates.globals |= {"labels": labels, "zh": labels.zh}


def _local(value: dt.datetime | None, tz: str) -> str:
    return "" if value is None else value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


_HTML = {"text/html": {"schema": {"type": "string"}}}
_PAGE = {200: {"description": "页面（HTML）", "content": _HTML}}
# The notice's 404 (the month has no certified list yet): a page for a browser (Accept: text/html),
# the ErrorBody for anyone else (the JSON media type is added with every error status, shared.http).
_NOTICE = {200: {"description": "公示页面（HTML，可打印）", "content": _HTML},
           404: {"description": "该月尚未认定，暂无公示：浏览器得到说明页面（HTML），其他客户端得到 ErrorBody",
                 "content": _HTML}}


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**context), status_code=status)


@router.get("/login", include_in_schema=False)
async def login(token: str, next: str = "/leading-group") -> RedirectResponse:
    read_token(token)  # refuse a bad token here, not on the next page
    response = RedirectResponse(next if next.startswith("/") else "/leading-group", status_code=303)
    response.set_cookie("points_token", token, httponly=True, samesite="strict")
    return response


@router.get("/leading-group", response_class=HTMLResponse, responses=_PAGE)  # type: ignore[arg-type]
async def leading_group(request: Request, principal: CurrentPrincipal,
                        community_id: Annotated[str | None, Query(min_length=1, max_length=64,
                                                                  pattern=ID_PATTERN)] = None,
                        month: Annotated[str | None, Query(pattern=MONTH)] = None) -> HTMLResponse:
    # recorders and supervisors too: the waiting list is theirs to verify, a page at a time ("全部核实本页")
    require_role(principal, Role.secretary, Role.leading_group, Role.recorder, Role.supervisor, Role.auditor,
                 Role.county_admin)
    rt: Runtime = request.app.state.runtime
    community_id = community_id or principal.community
    require_community(principal, community_id)
    tz = rt.settings.timezone
    month = month or month_of(local_date(await clock.now(request), tz))
    async with views.snapshot(rt.pool) as conn:  # every figure on the page from one moment
        return _render(
            "leading_group.html", principal=principal, community_id=community_id, month=month,
            community_name=await views.community_name(conn, community_id),
            state=await views.month(conn, community_id, month), glance=await views.glance(conn, community_id, month),
            waiting=await views.items(conn, community_id, month, "submitted", limit=200),
            carried=await views.carried_out(conn, community_id, month),
            signing=await views.signing(conn, community_id, month), quorum=review_settings().quorum,
            objections=await views.objections(conn, community_id, "open"), local=lambda v: _local(v, tz),
        )


@router.get("/notice/{community_id}/{month}", response_class=HTMLResponse, openapi_extra=OPEN,
            responses=_NOTICE)  # type: ignore[arg-type]
async def notice(community_id: PathId, month: Annotated[str, PathParam(pattern=MONTH)], request: Request,
                 detail: bool = False) -> HTMLResponse:
    """公示 is public: no login needed to read it. ``detail=1`` adds every item (for objections)."""
    rt: Runtime = request.app.state.runtime
    tz = rt.settings.timezone
    async with views.snapshot(rt.pool) as conn:
        state = await views.month(conn, community_id, month)
        complete = bool(state and state["complete"])
        lines = await views.notice_lines(conn, community_id, month) if complete else []
        items = await views.notice_items(conn, community_id, month) if complete and detail else []
        name = await views.community_name(conn, community_id)
    if not state and not _wants_html(request):
        raise Rejected(f"{name or community_id} {month} 尚未认定，暂无公示", status=404, code="notice_not_found")
    return _render("notice.html", community_id=community_id, month=month, state=state, lines=lines, items=items,
                   detail=detail, community_name=name, local=lambda v: _local(v, tz), status=200 if state else 404)
