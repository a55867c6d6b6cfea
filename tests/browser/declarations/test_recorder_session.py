"""Signing in to the recorder's page, without a browser or a broker (the router alone, in process)."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from fastapi import FastAPI

from services.declarations.web import router
from shared import http
from shared.auth import Principal, Role, issue_token

pytestmark = pytest.mark.unit

RECORDER = Principal(sub="rec-li", role=Role.recorder, community="c-01", name="李记录")


def client() -> httpx.AsyncClient:
    app = FastAPI()
    http.install(app, max_body_bytes=1024)
    app.include_router(router)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://office.local")


async def test_a_token_in_the_address_becomes_a_strict_httponly_cookie_and_leaves_the_address() -> None:
    async with client() as web:
        r = await web.get("/recorder", params={"token": issue_token(RECORDER)})
        assert r.status_code == 303 and r.headers["location"] == "/recorder"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("points_token=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
        page = await web.get("/recorder")
        assert page.status_code == 200
        assert "李记录（记录员）" in page.text and 'id="entry-form"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_a_pasted_token_signs_in_and_signing_out_forgets_it() -> None:
    async with client() as web:
        r = await web.post("/recorder/session", data={"token": f"  {issue_token(RECORDER)}\n"})
        assert r.status_code == 303
        assert "李记录" in (await web.get("/recorder")).text
        await web.post("/recorder/logout")
        assert 'action="/recorder/session"' in (await web.get("/recorder")).text


@pytest.mark.parametrize(("token", "reason"), [
    ("garbage", "登录凭证无效"),
    (issue_token(RECORDER, now=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)), "登录凭证已过期，请重新登录"),
])
async def test_a_bad_or_expired_token_shows_the_sign_in_form_with_the_reason(token: str, reason: str) -> None:
    async with client() as web:
        r = await web.get("/recorder", params={"token": token})
        assert r.status_code == 401 and reason in r.text and "Max-Age=0" in r.headers["set-cookie"]  # forgotten
        web.cookies.set("points_token", token)
        r = await web.get("/recorder")
        assert r.status_code == 401 and reason in r.text


async def test_staff_enter_items_other_roles_only_read_the_ledger() -> None:
    auditor = Principal(sub="aud-1", role=Role.auditor, community="*", name="审计")
    async with client() as web:
        web.cookies.set("points_token", issue_token(auditor))
        page = (await web.get("/recorder")).text
        assert 'id="entry-form"' not in page and 'id="community"' in page and 'id="ledger-table"' in page


async def test_static_files_are_served_and_nothing_else() -> None:
    async with client() as web:
        js = await web.get("/recorder/static/recorder.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert (await web.get("/recorder/static/..%2Froutes.py")).status_code == 404
        assert (await web.get("/recorder/static/routes.py")).status_code == 404
        assert (await web.post("/bench/noop")).status_code in (404, 405)  # only with BENCH_NOOP=1
