"""HTTP plumbing shared by the services: clear 4xx errors in zh-CN, body limit, health and readiness."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.commands import Rejected


def error_body(code: str, reason: str, **detail: Any) -> dict[str, Any]:
    return {"error": code, "reason": reason, **({"detail": detail} if detail else {})}


class BodyLimit:
    """Refuses bodies over the limit with 413 before the app reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(
            error_body("body_too_large", f"请求体过大（上限 {self.max_bytes} 字节）"), status_code=413
        )
        await response({"type": "http"}, _empty_receive, send)


class _TooLarge(Exception):
    pass


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


_FIELD_MESSAGES = {
    "missing": "缺少必填字段",
    "extra_forbidden": "不认识的字段",
    "json_invalid": "请求体不是合法的 JSON",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "string_type": "应为文本",
    "date_from_datetime_parsing": "应为日期（YYYY-MM-DD）",
    "date_parsing": "应为日期（YYYY-MM-DD）",
    "greater_than": "数值太小",
    "greater_than_equal": "数值太小",
    "less_than_equal": "数值太大",
    "string_too_long": "文本太长",
    "string_too_short": "文本太短",
    "enum": "不是允许的取值",
    "literal_error": "不是允许的取值",
}


_HTTP_MESSAGES = {
    400: ("json_invalid", "请求体无法解析：不是合法的 JSON，或编码不是 UTF-8"),
    404: ("not_found", "找不到该地址"),
    405: ("method_not_allowed", "不支持该请求方法"),
}


def install(app: FastAPI, *, max_body_bytes: int) -> None:
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.exception_handler(Rejected)
    async def rejected(_: Request, exc: Rejected) -> JSONResponse:
        return JSONResponse(jsonable_encoder(error_body(exc.code, exc.reason, **exc.detail)), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, reason = _HTTP_MESSAGES.get(exc.status_code, ("http_error", str(exc.detail)))
        return JSONResponse(error_body(code, reason), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append({"field": where, "problem": _FIELD_MESSAGES.get(err.get("type", ""), err.get("msg", ""))})
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return JSONResponse(error_body("json_invalid", "请求体不是合法的 JSON（或编码不是 UTF-8）"),
                                  status_code=400)
        reason = "；".join(f"{p['field'] or '请求体'}：{p['problem']}" for p in problems)
        return JSONResponse(error_body("invalid_request", f"请求内容有误：{reason}", problems=problems),
                              status_code=422)


ReadyCheck = Callable[[], Awaitable[dict[str, Any]]]
