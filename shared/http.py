"""HTTP plumbing shared by the services: clear 4xx errors in zh-CN, body limit, health and readiness."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.commands import Rejected

IdempotencyKey = Annotated[str, Header(min_length=8, max_length=128)]  # every command carries one
# Ids (subjects, communities, rules, units…) travel in URLs and CSV files: letters, digits and . _ : -
# only, starting with a letter or digit (an id with a space, a slash or an emoji is unreachable).
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"


class RequestBody(BaseModel):
    """A command's JSON body: an unknown field is an error, text is trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def error_body(code: str, reason: str, **detail: Any) -> dict[str, Any]:
    return {"error": code, "reason": reason, **({"detail": detail} if detail else {})}


class BodyLimit:
    """Reads the (bounded) body before the app does: over the limit -> 413; a JSON body carrying
    NUL (raw or as the escape \\u0000) -> 422, since PostgreSQL cannot store it in text and an
    event holding one would be accepted but could never reach a read model. Errors raised while
    the app reads would be swallowed into a generic 400, hence this order."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, 413, "body_too_large", f"请求体过大（上限 {self.max_bytes} 字节）")
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await self._refuse(send, 413, "body_too_large", f"请求体过大（上限 {self.max_bytes} 字节）")
                return
        json_body = headers.get(b"content-type", b"application/json").startswith(b"application/json")
        if json_body and (b"\x00" in body or b"\\u0000" in body):
            await self._refuse(send, 422, "text_unstorable", "文本中含有空字符（\\u0000），请删除后重试")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, status: int, code: str, reason: str) -> None:
        response = JSONResponse(error_body(code, reason), status_code=status)
        await response({"type": "http"}, _empty_receive, send)


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
    "int_from_float": "应为整数（不能有小数）",
    "float_parsing": "应为数字",
    "float_type": "应为数字",
    "bool_parsing": "应为 true 或 false",
    "bool_type": "应为 true 或 false",
    "list_type": "应为列表",
    "dict_type": "应为 JSON 对象",
    "model_type": "应为 JSON 对象",
    "model_attributes_type": "应为 JSON 对象",
    "too_long": "条目太多",
    "too_short": "条目太少",
    "less_than": "数值太大",
    "string_pattern_mismatch": "格式不对",
    "date_type": "应为日期（YYYY-MM-DD）",
    "date_from_datetime_inexact": "应为日期（YYYY-MM-DD），不带时间",
    "datetime_parsing": "应为日期时间（ISO 8601）",
    "datetime_type": "应为日期时间（ISO 8601）",
    "uuid_parsing": "应为 UUID",
    "string_unicode": "文本不是合法的 UTF-8",
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

    # PostgreSQL cannot store some text (e.g. NUL, "\\u0000"): a clear 422, not a 500; nothing was written.
    @app.exception_handler(asyncpg.CharacterNotInRepertoireError)
    @app.exception_handler(asyncpg.UntranslatableCharacterError)
    async def unstorable_text(_: Request, exc: Exception) -> JSONResponse:
        reason = "文本中含有无法保存的字符（例如空字符 \\u0000），请删除后重试"
        return JSONResponse(error_body("text_unstorable", reason), status_code=422)

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

