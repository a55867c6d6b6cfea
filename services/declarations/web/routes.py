"""The recorder's page (记录员工作台): plain HTML + one vanilla JS file calling the service's own API.

The page holds no business logic: it finds subjects, lists rules and posts declarations and
deductions through the same HTTP API every other channel uses, so the rules are enforced once.
Sign-in: a token pasted into the form, or ``?token=`` once, is kept in the ``points_token``
cookie (HttpOnly, SameSite=Strict) that ``shared.auth`` reads.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from shared import vocabulary
from shared.auth import ALL_COMMUNITIES, Principal, Role, read_token
from shared.errors import Rejected
from shared.settings import get_settings

HERE = Path(__file__).parent
COOKIE = "points_token"
COOKIE_MAX_AGE_S = 30 * 24 * 3600  # tokens are issued for 30 days by default (shared.auth)
ENTRY_ROLES = (Role.recorder, Role.supervisor)  # oral declarations and deductions: staff only (domain)
ROLE_NAMES = {Role(code): word for code, word in vocabulary.ROLES.items()}
# No inline script or style: everything comes from this server (the office machines are offline).
PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
STATIC = {name: (HERE / "static" / name).read_bytes() for name in ("recorder.js", "recorder.css")}
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
VERSION = hashlib.sha256(b"".join(STATIC.values())).hexdigest()[:10]  # cache-busting query string

router = APIRouter(tags=["recorder page"])


def _page(template: str, status: int = 200, **context: object) -> HTMLResponse:
    html = templates.get_template(template).render(version=VERSION, **context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def _sign_in(error: str = "", status: int = 200) -> HTMLResponse:
    response = _page("sign_in.html", status=status, error=error)
    if error:
        response.delete_cookie(COOKIE, path="/")
    return response


def _signed_in(request: Request, token: str) -> RedirectResponse:
    response = RedirectResponse("/recorder", status_code=303)  # drop ?token= from the address bar
    response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE_S, path="/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


def _principal(token: str) -> Principal | str:
    """The principal, or the reason (zh-CN) the token is refused."""
    try:
        return read_token(token)
    except Rejected as exc:
        return exc.reason


@router.get("/recorder", response_class=HTMLResponse, include_in_schema=False)
async def recorder_page(request: Request, token: str | None = None) -> Response:
    if token is not None:
        found = _principal(token.strip())
        return _signed_in(request, token.strip()) if isinstance(found, Principal) else _sign_in(found, 401)
    cookie = request.cookies.get(COOKIE, "")
    if not cookie:
        return _sign_in()
    principal = _principal(cookie)
    if not isinstance(principal, Principal):
        return _sign_in(principal, 401)
    runtime = getattr(request.app.state, "runtime", None)
    settings = runtime.settings if runtime is not None else get_settings()
    return _page(
        "recorder.html", principal=principal, role_name=ROLE_NAMES.get(principal.role, principal.role.value),
        may_enter=principal.role in ENTRY_ROLES, county_wide=principal.community == ALL_COMMUNITIES,
        timezone=settings.timezone,  # "today" and months are the county's civil dates
        vocabulary=vocabulary.as_json(),
    )


@router.post("/recorder/session", include_in_schema=False)
async def sign_in(request: Request, token: Annotated[str, Form(max_length=4096)] = "") -> Response:
    if not token.strip():
        return _sign_in("请粘贴登录凭证", 400)
    found = _principal(token.strip())
    return _signed_in(request, token.strip()) if isinstance(found, Principal) else _sign_in(found, 401)


@router.post("/recorder/logout", include_in_schema=False)
async def sign_out() -> Response:
    response = RedirectResponse("/recorder", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/recorder/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    body = STATIC.get(name)
    if body is None:
        raise Rejected("找不到该文件", status=404, code="not_found")
    return Response(body, media_type=STATIC_TYPES[Path(name).suffix],
                    headers={"cache-control": "public, max-age=86400", "x-content-type-options": "nosniff"})


if os.environ.get("BENCH_NOOP") == "1":
    # Only for bench/intake.py: the same server's ceiling for a JSON POST that does nothing.
    @router.post("/bench/noop", status_code=201, include_in_schema=False)
    async def noop(request: Request) -> Response:
        await request.body()
        return Response(b'{"ok":true}', status_code=201, media_type="application/json")
