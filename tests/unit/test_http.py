"""The HTTP edge: bodies that are too large, unparsable or carry NUL get a clear 4xx, in zh-CN."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from shared import http

pytestmark = pytest.mark.unit


class Note(BaseModel):
    text: str
    count: int = 1


def given_an_app() -> TestClient:
    app = FastAPI()
    http.install(app, max_body_bytes=1000)

    @app.post("/notes")
    def post_note(note: Note) -> dict[str, str]:
        return {"text": note.text}

    return TestClient(app)


@pytest.mark.parametrize(("body", "status", "code"), [
    (b'{"text": "ok"}', 200, None),
    (b'{"text": "a\\u0000b"}', 422, "text_unstorable"),
    (b'{"text": "a\x00b"}', 422, "text_unstorable"),
    (b'{"text": "' + b"x" * 2000 + b'"}', 413, "body_too_large"),
    (b'{"text": ', 400, "json_invalid"),
    (b"\xff\xfe", 400, "json_invalid"),
    (b'{"text": "x", "count": 1.5}', 422, "invalid_request"),
    (b'{"text": "x", "extra": 1}', 200, None),
])
def test_a_body_gets_the_answer_its_content_deserves(body: bytes, status: int, code: str | None) -> None:
    r = given_an_app().post("/notes", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    if code:
        assert r.json()["error"] == code and r.json()["reason"]


def test_a_body_streamed_without_a_length_is_still_limited() -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"text": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}'

    r = given_an_app().post("/notes", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"


def test_a_validation_error_names_the_field_in_chinese() -> None:
    r = given_an_app().post("/notes", json={"count": "many"})
    assert r.status_code == 422
    assert "text：缺少必填字段" in r.json()["reason"] and "count：应为整数" in r.json()["reason"]
