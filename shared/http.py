"""HTTP plumbing shared by the services: one error schema (``ErrorBody``) for every 4xx, in zh-CN,
the body limit, 415 for bodies that are not JSON, validated ids, months, dates and names, and an
OpenAPI document that says all of it (every status code, the bearer scheme, real media types)."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import Rejected

IdempotencyKey = Annotated[str, Header(min_length=8, max_length=128)]  # every command carries one
# Ids (subjects, communities, rules, units…) travel in URLs and CSV files: letters, digits and . _ : -
# only, starting with a letter or digit (an id with a space, a slash or an emoji is unreachable).
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
MONTH_PATTERN = r"^20[0-9]{2}-(0[1-9]|1[0-2])$"  # YYYY-MM
# The scheme's life: no item, registration or move can be dated outside it (a typo such as
# 0001-01-01 or 9999-12-31 is refused, not stored). Relocation began in the 2010s (seed).
SCHEME_FIRST_DAY = dt.date(2016, 1, 1)
SCHEME_LAST_DAY = dt.date(2050, 12, 31)
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"  # zero-width characters and the soft hyphen


def _within_scheme(day: dt.date) -> dt.date:
    if not SCHEME_FIRST_DAY <= day <= SCHEME_LAST_DAY:
        raise PydanticCustomError("date_out_of_scheme", "日期应在 {first} 至 {last} 之间",
                                  {"first": SCHEME_FIRST_DAY.isoformat(), "last": SCHEME_LAST_DAY.isoformat()})
    return day


def _clean_text(value: str) -> str:
    """NFC, trimmed (zero-width characters too); control characters refused; may not be empty."""
    text = unicodedata.normalize("NFC", value).strip().strip(_INVISIBLE).strip()
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise PydanticCustomError("text_control", "不能含有控制字符")
    if not text.strip(_INVISIBLE + " "):
        raise PydanticCustomError("text_blank", "不能为空，也不能只有空白或不可见字符")
    return text


SchemeDate = Annotated[dt.date, AfterValidator(_within_scheme),
                       Field(description=f"YYYY-MM-DD，{SCHEME_FIRST_DAY} 至 {SCHEME_LAST_DAY}")]
Name = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_clean_text)]
Title = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_clean_text)]
_ID = re.compile(ID_PATTERN)


def id_problem(value: str) -> str | None:
    """Why ``value`` cannot be an id (zh-CN), or None (for ids read from files, outside pydantic)."""
    if not value or len(value) > 64 or not _ID.match(value):
        return f"编号 {value!r} 只能由字母、数字和 . _ : - 组成（以字母或数字开头，最长 64 个字符）"
    return None


def clean_name(value: str) -> tuple[str, str | None]:
    """(cleaned name, problem in zh-CN or None), for names read from files."""
    try:
        return _clean_text(value), None
    except PydanticCustomError as exc:
        return value, f"姓名（名称）{exc.message()}"


class ErrorBody(BaseModel):
    """Every refusal, of every service: a stable English code, a reason in zh-CN, and details."""

    error: str = Field(description="稳定的错误代码，例如 invalid_request", examples=["monthly_cap_exceeded"])
    reason: str = Field(description="给人看的原因（中文）", examples=["请求内容有误：quantity：应为整数"])
    detail: dict[str, Any] | None = Field(None, description="细节，例如 problems（逐字段的问题）或 rows")


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
        content_type = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if body and content_type not in _BODY_TYPES and scope.get("method") in ("POST", "PUT", "PATCH"):
            await self._refuse(send, 415, "unsupported_media_type",
                               "请求体须为 JSON（content-type: application/json）；导入文件请用 multipart/form-data")
            return
        json_body = content_type == b"application/json"
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


_BODY_TYPES = (b"application/json", b"multipart/form-data", b"application/x-www-form-urlencoded")


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
    "finite_number": "应为有限的数字（不能是 NaN 或无穷大）",
    "int_from_float_parsing": "应为整数",
    "date_future": "日期不能晚于今天",
    "date_past": "日期不能早于今天",
    "decimal_parsing": "应为数字",
    "decimal_type": "应为数字",
    "decimal_max_digits": "数字位数太多",
    "decimal_max_places": "小数位数太多",
    "decimal_whole_digits": "整数位数太多",
    "missing_argument": "缺少必填字段",
    "value_error": "取值不对",
    "url_parsing": "应为网址",
    "bytes_type": "应为文件",
    "none_required": "应为空",
    "is_instance_of": "类型不对",
    "frozen_set_type": "应为列表",
    "set_type": "应为列表",
    "tuple_type": "应为列表",
    "union_tag_invalid": "不是允许的取值",
    "json_type": "应为 JSON",
    "string_sub_type": "应为文本",
}


_HTTP_MESSAGES = {
    400: ("json_invalid", "请求体无法解析：不是合法的 JSON，或编码不是 UTF-8"),
    401: ("unauthorized", "需要登录（请求须带有效的 bearer 令牌）"),
    403: ("forbidden", "无权执行此操作"),
    404: ("not_found", "找不到该地址"),
    405: ("method_not_allowed", "不支持该请求方法"),
    413: ("body_too_large", "请求体过大"),
    415: ("unsupported_media_type", "请求体格式不受支持"),
}
_CUSTOM = ("date_out_of_scheme", "text_control", "text_blank")  # their own zh-CN message


def _problem(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind in _CUSTOM:
        return str(err.get("msg", ""))
    if kind == "string_pattern_mismatch":
        return "格式不对（编号只能由字母、数字和 . _ : - 组成；月份为 YYYY-MM）"
    if kind in ("literal_error", "enum") and err.get("ctx", {}).get("expected"):
        return f"不是允许的取值（可用：{err['ctx']['expected']}）"
    return _FIELD_MESSAGES.get(kind, "取值不符合要求")



def _methods_of(app: FastAPI, path: str) -> list[str]:
    """The methods the OpenAPI document lists for the path (what Allow must say)."""
    table: list[tuple[re.Pattern[str], list[str]]] | None = getattr(app.state, "_allow_table", None)
    if table is None:
        table = [(re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)) + "$"),
                  [m.upper() for m in ops if m in ("get", "post", "put", "patch", "delete")])
                 for template, ops in app.openapi().get("paths", {}).items()]
        app.state._allow_table = table
    return sorted({m for pattern, methods in table if pattern.match(path) for m in methods})


def install(app: FastAPI, *, max_body_bytes: int) -> None:
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    document(app)

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
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, reason = _HTTP_MESSAGES.get(exc.status_code, ("http_error", "请求无法处理"))
        headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() != "allow"}
        if exc.status_code == 405:  # every method of the path, not just those of the first route that matched it
            allowed = _methods_of(app, request.url.path)
            headers["allow"] = ", ".join(allowed)
            reason = f"不支持该请求方法（可用：{'、'.join(allowed)}）"
        return JSONResponse(error_body(code, reason), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append({"field": where, "problem": _problem(err)})
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return JSONResponse(error_body("json_invalid", "请求体不是合法的 JSON（或编码不是 UTF-8）"),
                                  status_code=400)
        reason = "；".join(f"{p['field'] or '请求体'}：{p['problem']}" for p in problems)
        return JSONResponse(error_body("invalid_request", f"请求内容有误：{reason}", problems=problems),
                              status_code=422)



# ---- OpenAPI: what is sent is what is documented ---------------------------------------------

ERROR_STATUSES = {
    "400": "请求体不是合法的 JSON", "401": "未登录或令牌无效", "403": "角色或社区无权操作",
    "404": "找不到该对象或地址", "409": "与当前状态冲突（已认定、幂等键重用、并发修改等）",
    "413": "请求体过大", "415": "请求体格式不受支持（须为 JSON）", "422": "请求内容有误或不符合业务规则",
}
OPEN: dict[str, Any] = {"security": []}  # openapi_extra of a route anyone may call
OPEN_PATHS = ("/healthz", "/readyz", "/openapi.json", "/docs", "/redoc", "/sign-in", "/static")


def document(app: FastAPI) -> None:
    """Replace FastAPI's default 422 schema by ``ErrorBody`` on every operation, declare every error
    status, the bearer scheme and the idempotency header; cached like FastAPI's own document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        doc["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                       "description": "县级管理员签发的令牌（shared.auth）；网页也可用 cookie points_token"}}
        ref = {"$ref": "#/components/schemas/ErrorBody"}
        for path, operations in doc.get("paths", {}).items():
            for method, op in operations.items():
                if method not in ("get", "post", "put", "patch", "delete"):
                    continue
                responses = op.setdefault("responses", {})
                for status, text in ERROR_STATUSES.items():
                    # a media type the route declares itself for this status (e.g. a page's text/html 404) stays
                    own = {media: spec for media, spec in responses.get(status, {}).get("content", {}).items()
                           if media != "application/json"}
                    description = responses.get(status, {}).get("description", text) if own else text
                    responses[status] = {"description": description,
                                         "content": {**own, "application/json": {"schema": ref}}}
                if not path.startswith(OPEN_PATHS) and "security" not in op:  # OPEN: security=[] on the route
                    op["security"] = [{"bearer": []}]
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
